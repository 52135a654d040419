import { ACTIVE_STATES, RUNNABLE_STATES, WAITING_STATES } from "../../libs/models/index.js";
import { reenqueueRunnable } from "../../libs/client/index.js";
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

  private async workflowFilter(): Promise<Record<string, unknown>> {
    const wfs = await this.consumed();
    return wfs ? { workflow: { $in: wfs } } : {};
  }

  /**
   * Stops the launcher when nothing is left that it could run: nothing
   * runnable that fits its time and nodes, nothing active anywhere that could
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
    const wfs = o.workflows ?? ctx.workerWorkflows();
    for (const wf of wfs) if ((await queues.waiting(wf)) > 0) return;
    if (Date.now() < this.nextStoreCheck) return;
    this.nextStoreCheck = Date.now() + 2 * SECOND;
    const wf = await this.workflowFilter();
    const left = ctx.minutesLeft();
    const fit: Record<string, unknown> = { ...wf, state: { $in: [...RUNNABLE_STATES] } };
    if (Number.isFinite(left)) fit.wallTimeMinutes = { $lte: left };
    if (o.jobMode === "mpi") fit.numNodes = { $lte: ctx.poolSize() };
    else {
      fit.numNodes = { $lte: 1 };
      fit.ranksPerNode = { $lte: 1 };
    }
    // Existence, not counts: a scan stops at the first match.
    const exists = async (q: Record<string, unknown>) => (await store.jobs.findOne(q as never, { projection: { _id: 1 } })) !== null;
    if (await exists(fit)) {
      // Runnable in MongoDB but nothing arrives: the queue lost entries (Redis flushed or restarted).
      if (Date.now() - ctx.lastActivity() > 3 * SECOND && Date.now() - this.reconciledAt > 5 * SECOND) {
        this.reconciledAt = Date.now();
        const n = await reenqueueRunnable(store, queues, await this.consumed());
        ctx.log(`nothing arrived while jobs are runnable: re-offered ${n} queue entries`);
      }
      return;
    }
    if (await exists({ ...wf, state: { $in: [...ACTIVE_STATES] } })) return;
    const waiting = await store.jobs.find({ ...wf, state: { $in: [...WAITING_STATES] } } as never, { projection: { parents: 1 }, limit: 1000 }).toArray();
    if (waiting.length > 0) {
      const parents = [...new Set(waiting.flatMap((w) => w.parents))];
      const moved = await o.client.jobs.releaseChildren(parents);
      if (moved > 0) return;
      // Parents outside this launcher's workflows may still finish; those are active elsewhere.
      if (await exists({ _id: { $in: parents }, state: { $nin: ["JOB_FINISHED", "FAILED", "USER_KILLED"] } })) return;
    }
    ctx.stop("nothing left to run");
  }
}
