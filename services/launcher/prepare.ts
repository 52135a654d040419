import { mkdirSync } from "node:fs";
import type { App, Job } from "../../libs/models/index.js";
import { coerceError } from "../../libs/errors/index.js";
import { workdirFor } from "../../libs/client/index.js";
import { jobFields, type Transition } from "../../libs/store/index.js";
import { stageIn } from "./stage.js";
import { demandOf, sameDemand, type Demand, type Grant, type NodePool } from "./pool.js";
import type { Core, Running } from "./core.js";
import type { JobRecords } from "./records.js";
import type { ResolvedOptions } from "./options.js";
import type { RunOutcome } from "./runner.js";
import { describe } from "./plan.js";

/** A job's share of a launcher's capacity: of one node (serial), or nodes (mpi), and GPUs on each. */
export function sizeOf(o: Pick<ResolvedOptions, "jobMode">, job: Job): Demand {
  return demandOf(job, o.jobMode);
}

/** Why this launcher can never run the job, or undefined when it can. */
export function refusal(o: Pick<ResolvedOptions, "jobMode">, pool: NodePool, job: Job, size: Demand): string | undefined {
  if (o.jobMode === "serial" && (job.numNodes > 1 || job.ranksPerNode > 1)) {
    // As 0.x: a serial launcher runs single-process jobs; several ranks, even on one node, need mpirun.
    return `${job.numNodes > 1 ? `${job.numNodes} nodes` : `${job.ranksPerNode} ranks`}: serial launchers run single-process jobs; left for an mpi launcher`;
  }
  const never = pool.whyNever(size);
  if (never) return `${never}: left for another launcher`;
  return undefined;
}

/**
 * What comes before a claimed job's run: its working directory, stage-in,
 * preprocess (whose edits to the job are what runs). "ready" to run on
 * `hold.grant` (swapped when the preprocess changed the job's size),
 * "ended" when the job's last write was made here, "stopping" when the
 * launcher stopped meanwhile.
 */
export class Preparation {
  constructor(
    private readonly core: Core,
    private readonly records: JobRecords,
    private readonly script: (what: "preprocess", cmd: string, r: Running) => Promise<RunOutcome>,
  ) {}

  async prepare(r: Running, app: App | undefined, hold: { grant: Grant }, pre: string): Promise<"ready" | "ended" | "stopping"> {
    const fail = async (message: string) => (await this.records.finish(r, [{ state: "FAILED", message }], {}), "ended" as const);
    if (!app) return fail(`app '${r.job.application}' does not exist`);
    const workdir = r.job.workdir;
    try {
      mkdirSync(workdir, { recursive: true });
    } catch (err) {
      return fail(`cannot make the working directory: ${coerceError(err).message}`);
    }
    if (r.job.state !== "STAGED_IN") return "ready";
    try {
      stageIn(workdir, r.job, await this.parentDirs(r.job));
    } catch (err) {
      return fail(`stage-in failed: ${coerceError(err).message}`);
    }
    if (pre) {
      const out = await this.script("preprocess", pre, r);
      if (out.exitCode !== 0) return fail(`preprocess ${describe(out)}`);
      // 0.x builds the run from the row as its preprocess left it
      // (serial_mode_timed.py:232-262, launcher.py:60-80): edited args,
      // environment, ranks, nodes are what runs.
      const now = await this.records.afterScript(r, "STAGED_IN");
      if (!now) return "ended";
      if (r.released && now.state !== "PREPROCESSED") return fail(`its preprocess left it ${now.state}, from which no launcher goes on`);
      const sizeBefore = sizeOf(this.core.o, r.job);
      r.job = { ...now, workdir };
      const regrant = await this.regrant(r, hold.grant, sizeBefore);
      if (regrant === "ended" || regrant === "stopping") return regrant;
      if (regrant) hold.grant = regrant;
    }
    if (r.killed) return "ready";
    const from = r.job.state as "STAGED_IN" | "PREPROCESSED";
    const path: Transition["path"] = from === "STAGED_IN" ? [{ state: "PREPROCESSED" }, { state: "RUNNING" }] : [{ state: "RUNNING", message: `launcher ${this.core.owner}` }];
    const lease = r.released ? { lock: { owner: this.core.owner, until: new Date(Date.now() + this.core.o.leaseTtlMs) } } : undefined;
    if (!(await this.records.advance(r, { id: r.job._id, from, path, set: lease }))) {
      this.records.lostLease(r);
      return "ended";
    }
    r.released = false;
    return "ready";
  }

  /** The working directories of a job's parents, in the order of its parent list, with their ids (a clash of names is suffixed with one). */
  private async parentDirs(job: Job): Promise<Array<{ id: string; dir: string }>> {
    if (job.parents.length === 0) return [];
    const docs = await jobFields(this.core.o.client.store, job.parents, ["workdir", "workflow", "name"]);
    const byId = new Map(docs.map((d) => [d._id, d]));
    return job.parents.flatMap((p) => {
      const d = byId.get(p);
      // 0.x computes a parent's directory whether or not it recorded one.
      return d ? [{ id: p, dir: d.workdir || workdirFor(this.core.o.dbPath, d) }] : [];
    });
  }

  /**
   * A preprocess may change the job's size (0.x's `make_sides_pre.py` sets
   * `ranks_per_node`): the grant is swapped for one of the new size, or the
   * job is left (RESTART_READY, already PREPROCESSED so it runs at once) for
   * a launcher it fits. Undefined: the size did not change.
   */
  private async regrant(r: Running, g: Grant, sizeBefore: Demand): Promise<Grant | "ended" | "stopping" | undefined> {
    const size = sizeOf(this.core.o, r.job);
    const why = refusal(this.core.o, this.core.pool, r.job, size);
    if (why) {
      const pre = r.job.state === "STAGED_IN" ? [{ state: "PREPROCESSED" as const }] : [];
      await this.records.finish(r, [...pre, { state: "RESTART_READY", message: `its preprocess asked for ${why}` }], {});
      return "ended";
    }
    if (sameDemand(size, sizeBefore)) return undefined;
    g.release();
    const next = await this.pool.acquire(size);
    if (next) return next;
    // The pool closes when the launcher stops.
    r.timedOut = true;
    return "stopping";
  }

  private get pool(): NodePool {
    return this.core.pool;
  }
}
