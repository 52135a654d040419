import { anyActive, anyRunnableFitting, anyUnfinished, parentsOfWaiting } from "../../libs/store/index.js";
import { reenqueueRunnable, releaseChildren } from "../../libs/client/index.js";
import { SECOND, type ResolvedOptions } from "./options.js";

/** What the idle check needs of its launcher. */
export interface IdleContext {
  readonly o: ResolvedOptions;
  /** Jobs running, or waiting for nodes, here. */
  busy(): boolean;
  /** When an entry last arrived or a job last ended here (Date.now()). */
  lastActivity(): number;
  /** The workflows whose queues this launcher has workers on. */
  workerWorkflows(): string[];
  /** The size of this launcher's node pool. */
  poolSize(): number;
  /** The most GPUs one of its nodes has. */
  poolMaxGpus(): number;
  minutesLeft(): number;
  active(): boolean;
  stop(reason: string): void;
  log(line: string): void;
}

/** The names among `names` a launcher with these options consumes. */
export function matching(o: Pick<ResolvedOptions, "workflowParts">, names: readonly string[]): string[] {
  const parts = o.workflowParts;
  return parts ? names.filter((w) => parts.some((p) => w.includes(p))) : [...names];
}

/** Decides when a non-persistent launcher has nothing left to do, and notices queues that lost their entries. */
export class IdleCheck {
  private reconciledAt = 0;
  private nextStoreCheck = 0;

  constructor(private readonly ctx: IdleContext) {}

  /**
   * The workflows this launcher consumes now: its exact list, those with
   * jobs in MongoDB or a queue in Redis matching its parts, or undefined
   * for all.
   */
  private async consumed(): Promise<string[] | undefined> {
    const o = this.ctx.o;
    if (o.workflows || !o.workflowParts) return o.workflows;
    const { jobs, queues } = o.client;
    return matching(o, [...new Set([...(await jobs.workflows()), ...(await queues.workflows())])]);
  }

  /**
   * Stops the launcher when nothing is left that it could run (of its
   * workflows, with its tags): nothing runnable that fits its time, nodes and GPUs, nothing active anywhere that could
   * release children, nothing waiting on parents that could still finish.
   */
  async check(): Promise<void> {
    const { ctx } = this;
    const o = ctx.o;
    if (!ctx.active() || o.persistent || ctx.busy()) return;
    if (Date.now() - ctx.lastActivity() < o.idleCheckMs) return;
    const { store, queues } = o.client;
    // Entries waiting in Redis will arrive: no need to ask MongoDB, whose
    // queries here scan the collection on FerretDB (~1 s per 10k jobs).
    // (Not for a tagged launcher: the entries may all be others'.)
    if (!o.tags) for (const wf of o.workflows ?? ctx.workerWorkflows()) if ((await queues.waiting(wf)) > 0) return;
    if (Date.now() < this.nextStoreCheck) return;
    this.nextStoreCheck = Date.now() + 2 * SECOND;
    const wfs = await this.consumed();
    const fits = { workflows: wfs, tags: o.tags, minutesLeft: ctx.minutesLeft(), maxNodes: ctx.poolSize(), maxGpus: ctx.poolMaxGpus(), serial: o.jobMode === "serial" };
    if (await anyRunnableFitting(store, fits)) {
      // Runnable in MongoDB but nothing arrives: the queue lost entries (Redis flushed or restarted).
      if (Date.now() - ctx.lastActivity() > 3 * SECOND && Date.now() - this.reconciledAt > 5 * SECOND) {
        this.reconciledAt = Date.now();
        const n = await reenqueueRunnable(store, queues, wfs);
        ctx.log(`nothing arrived while jobs are runnable: re-offered ${n} queue entries`);
      }
      return;
    }
    if (await anyActive(store, wfs, o.tags)) return;
    const parents = await parentsOfWaiting(store, { workflows: wfs, tags: o.tags, limit: 1000 });
    if (parents.length > 0) {
      const moved = await releaseChildren(o.client, parents);
      if (moved > 0) return;
      // Parents outside this launcher's workflows may still finish; those are active elsewhere.
      if (await anyUnfinished(store, parents)) return;
    }
    ctx.stop("nothing left to run");
  }
}
