/**
 * The AMBS loop against a Balsam database: keep `inFlight` evaluation jobs
 * queued or running, take each result as its launcher announces it, ask the
 * strategy for the next configuration, stop after `maxEvals`. Separate from
 * ambs.ts (the command line) so the benchmark can run the same loop.
 */
import type { Balsam, FinishedJob, Job, JobSpec } from "../../libs/client/index.js";
import { configArgs, encodeConfig, parseConfig, type Config, type SearchProblem } from "./problem.js";
import { ambs, type Strategy } from "./strategy.js";

export interface SearchOptions {
  balsam: Balsam;
  problem: SearchProblem;
  /** The app that evaluates one configuration (`--run`). */
  runApp: string;
  /** Where the evaluation jobs go: the search job's own workflow. */
  workflow: string;
  maxEvals: number;
  inFlight: number;
  seed: number;
  /** Evaluation jobs get this node_packing_count. Default 1. */
  nodePackingCount?: number;
  /**
   * The search job's id: evaluations are tagged with it (`data.search`), and
   * a search restarted under the same id (RESTART_READY after a launcher
   * timeout) picks up its finished and running evaluations instead of
   * starting over.
   */
  searchJobId?: string;
  /** Default: the AMBS strategy seeded with `seed`. */
  strategy?: Strategy;
  log?: (line: string) => void;
  /** Called as each result is received, with the receiving time (ms since the epoch). */
  onResult?: (r: FinishedJob, receivedAtMs: number) => void;
}

export interface SearchOutcome {
  best: { config: Config; objective: number; job: string } | undefined;
  /** Evaluations that ended, including failed ones. */
  evaluations: number;
  failed: number;
}

const TASK_RE = /^task(\d+)$/;

interface InFlight {
  name: string;
  config: Config;
}

/** A finite number from an evaluation's result, else undefined (failed, or printed no `DH-OUTPUT:`). */
function objectiveOf(r: FinishedJob): number | undefined {
  if (r.state !== "JOB_FINISHED") return undefined;
  return typeof r.result === "number" && Number.isFinite(r.result) ? r.result : undefined;
}

export async function runSearch(o: SearchOptions): Promise<SearchOutcome> {
  const log = o.log ?? (() => undefined);
  const strategy = o.strategy ?? ambs(o.problem.dimensions, { seed: o.seed });
  const { balsam } = o;
  const inFlight = new Map<string, InFlight>();
  let best: SearchOutcome["best"];
  let ended = 0;
  let failed = 0;
  let nextTask = 0;
  // Subscribed before any evaluation is added, so none of their results can be missed.
  const watcher = await balsam.watch();
  try {
    const record = (r: FinishedJob, f: InFlight) => {
      ended++;
      const objective = objectiveOf(r);
      strategy.tell(f.config, objective);
      if (objective === undefined) {
        failed++;
        log(`${f.name} ${r.state} without a result`);
        return;
      }
      if (!best || objective > best.objective) best = { config: f.config, objective, job: f.name };
      log(`${f.name} ${encodeConfig(o.problem, f.config)} → ${objective} (best ${best.objective})`);
    };

    if (o.searchJobId) {
      const mine = (await balsam.jobs.filter({ workflow: o.workflow, application: o.runApp, name: "task" }).list({ projection: { name: 1, state: 1, args: 1, data: 1 } })).filter(
        (j: Job) => j.data?.search === o.searchJobId,
      );
      for (const j of mine) {
        const m = TASK_RE.exec(j.name);
        if (m) nextTask = Math.max(nextTask, Number(m[1]) + 1);
        inFlight.set(j._id, { name: j.name, config: parseConfig(o.problem, j.args) });
      }
      if (mine.length) log(`resuming: ${mine.length} evaluation(s) of this search already exist`);
      // Those already final are delivered by the first next(); the rest as they finish.
      await watcher.add([...inFlight.keys()]);
    }

    const refill = async () => {
      const n = Math.min(o.inFlight - inFlight.size, o.maxEvals - ended - inFlight.size);
      if (n <= 0) return;
      const specs: JobSpec[] = [];
      const configs: InFlight[] = [];
      for (let i = 0; i < n; i++) {
        const config = strategy.ask();
        const name = `task${nextTask++}`;
        configs.push({ name, config });
        specs.push({
          name,
          workflow: o.workflow,
          application: o.runApp,
          args: configArgs(o.problem, config),
          nodePackingCount: o.nodePackingCount ?? 1,
          data: o.searchJobId ? { search: o.searchJobId } : {},
        });
      }
      const jobs = await balsam.jobs.addMany(specs);
      jobs.forEach((j, i) => inFlight.set(j._id, configs[i]!));
      await watcher.add(
        jobs.map((j) => j._id),
        { checkStore: false },
      );
    };

    await refill();
    while (inFlight.size > 0) {
      const first = await watcher.next();
      if (!first) break;
      // Results that arrived during the last refill are taken together: one
      // addMany replaces them all, instead of one round trip per result.
      const batch = [first];
      for (let r = await watcher.next({ timeoutMs: 0 }); r; r = await watcher.next({ timeoutMs: 0 })) batch.push(r);
      for (const r of batch) {
        o.onResult?.(r, Date.now());
        const f = inFlight.get(r.id);
        if (!f) continue;
        inFlight.delete(r.id);
        record(r, f);
      }
      await refill();
    }
  } finally {
    await watcher.close();
  }
  return { best, evaluations: ended, failed };
}
