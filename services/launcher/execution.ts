import { join } from "node:path";
import { jobOutFileName, type App, type Job, type JobState } from "../../libs/models/index.js";
import { coerceError } from "../../libs/errors/index.js";
import { readResult, outputTail, type RunHandle, type RunOutcome } from "./runner.js";
import { stageOut } from "./stage.js";
import { SCRIPT_LIMIT_MS } from "./options.js";
import { countFastFails, planAfterHandler, planAfterRun, stageOutFailed, wantsFastFailCount, type AfterRun, type HandledState, type RunFacts, type Step } from "./plan.js";
import { JobRecords } from "./records.js";
import { Preparation } from "./prepare.js";
import type { Grant } from "./pool.js";
import type { Core, Running, Taken } from "./core.js";
import type { AheadEntry } from "./fence.js";

/** `fn`, called at most once however often the result is. */
export function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (!done) fn();
    done = true;
  };
}

/** What a queue entry needs after a job ran ahead of its claim: handled, read afresh, or given back. */
export type AheadResult = Taken | "give-back";

/** Runs jobs and records how they ended; what is recorded is decided by plan.ts. */
export class Execution {
  readonly records: JobRecords;
  private readonly preparation: Preparation;

  constructor(private readonly core: Core) {
    this.records = new JobRecords(core);
    this.preparation = new Preparation(core, this.records, (what, cmd, r) => this.script(what, cmd, r, r.job.state));
  }

  /**
   * Runs a job before recording anything (DESIGN §7). It ends within
   * `claimAfterMs`: one write records the whole path READY → … →
   * JOB_FINISHED (or FAILED). Still running then: it is claimed (RUNNING,
   * leased) and goes on as any job. Meanwhile its queue entry stays locked
   * by this launcher's worker, so no other launcher can take it; if this
   * launcher dies, the process dies with it (watchdog, pdeathsig), the lock
   * lapses and the entry is delivered again — the job runs again, never
   * twice at once, and is recorded once: each write is conditioned on the
   * version it was queued with.
   */
  async runAhead(entry: AheadEntry, job: Job, app: App, grant: Grant, steps: Step[], workdir: string): Promise<AheadResult> {
    const { core } = this;
    const id = job._id;
    const r: Running = { job: { ...job, workdir }, killed: false, timedOut: false, claimed: false, version: job.updatedAt };
    const outFile = join(workdir, jobOutFileName(job.name));
    core.running.set(id, r);
    core.fence.ahead(id, entry);
    let handedOff = false;
    const release = once(() => grant.release());
    try {
      const t0 = Date.now();
      const handle = this.start(r, app, grant, outFile, true);
      let timer: NodeJS.Timeout | undefined;
      const first = await Promise.race([handle.done, new Promise<"claim">((res) => (timer = setTimeout(() => res("claim"), core.o.claimAfterMs)))]);
      clearTimeout(timer);
      if (first === "claim" && !r.killed && !r.timedOut) {
        const claimed = await this.records.claimAhead(r, steps);
        if (claimed === "claimed") {
          handedOff = true;
          core.track(this.guarded(r, release, () => this.afterStart(r, app, handle, t0, outFile, release)), id);
          return "done";
        }
        handle.terminate(core.o.killGraceMs);
        await handle.done;
        // Fenced: nothing was written; the entry goes back if it is still ours (else its lock is another's and this fails).
        return claimed === "fenced" ? "give-back" : claimed;
      }
      const outcome = await handle.done;
      release();
      return await this.afterRun(r, app, outFile, outcome, (Date.now() - t0) / 1000, { steps, queued: job });
    } finally {
      if (!handedOff) {
        release();
        core.untrack(r);
        core.touch();
      }
    }
  }

  /** A claimed job: its stage-in and preprocess when its path has them, then its run. */
  async runClaimed(r: Running, app: App | undefined, grant: Grant, pre: string): Promise<void> {
    const hold = { grant };
    const release = () => hold.grant.release();
    const outFile = join(r.job.workdir, jobOutFileName(r.job.name));
    await this.guarded(r, release, async () => {
      const ready = await this.preparation.prepare(r, app, hold, pre);
      if (ready === "ended" || !app) return;
      if (ready === "stopping" || r.killed || r.timedOut) return void (await this.afterRun(r, app, outFile));
      await this.afterStart(r, app, this.start(r, app, hold.grant, outFile), Date.now(), outFile, release);
    });
  }

  /** Runs one of a job's stretches on this launcher; whatever happens, its share of the nodes and its place in `running` are given back. */
  private async guarded(r: Running, release: () => void, body: () => Promise<unknown>): Promise<void> {
    try {
      await body();
    } catch (err) {
      await this.records.failUnexpected(r, err);
    } finally {
      release();
      this.core.untrack(r);
      this.core.touch();
    }
  }

  /** Starts the job's process; a command that cannot be built is a failed start. */
  private start(r: Running, app: App, grant: Grant, outFile: string, mkdir = false): RunHandle {
    let handle: RunHandle;
    try {
      const { argv, shellCommand, env } = this.core.commands.run(r.job, app, grant);
      // Told to a job started ahead of its claim: the client's currentJob() waits that long to see it RUNNING.
      if (!r.claimed) env.BALSAM_CLAIM_AFTER_MS = String(this.core.o.claimAfterMs);
      handle = this.core.supervisor().run({ argv, shellCommand, cwd: r.job.workdir, env, outFile, mkdir, fenceKey: r.job._id });
    } catch (err) {
      handle = { pid: undefined, done: Promise.resolve({ exitCode: null, signal: null, timedOut: false, spawnError: coerceError(err).message }), terminate: () => undefined };
    }
    r.handle = handle;
    if (r.killed || r.timedOut) handle.terminate(this.core.o.killGraceMs);
    return handle;
  }

  /** Waits for the job's process, gives its nodes back, and records how it ended. */
  private async afterStart(r: Running, app: App, handle: RunHandle, t0: number, outFile: string, release: () => void): Promise<unknown> {
    const outcome = await handle.done;
    release();
    return this.afterRun(r, app, outFile, outcome, (Date.now() - t0) / 1000);
  }

  /** Runs a pre/postprocess script or handler; a command line that does not parse is a failed start. */
  private async script(what: "preprocess" | "postprocess", cmd: string, r: Running, state: JobState): Promise<RunOutcome> {
    let spec;
    try {
      spec = this.core.commands.script(what, cmd, r.job, state);
    } catch (err) {
      return { exitCode: null, signal: null, timedOut: false, spawnError: coerceError(err).message };
    }
    return this.core.supervisor().run({ ...spec, cwd: r.job.workdir, timeoutMs: SCRIPT_LIMIT_MS, fenceKey: r.job._id }).done;
  }

  /**
   * The one place a run's end is recorded: the facts gathered, plan.ts
   * decides, this carries it out. `ahead` is given for a job that ran ahead
   * of its claim: its path from the queued state is written in the same
   * write, conditioned on the version it was queued with.
   */
  private async afterRun(r: Running, app: App, outFile: string, outcome?: RunOutcome, runtimeSeconds?: number, ahead?: { steps: Step[]; queued: Job }): Promise<AheadResult> {
    const postprocess = r.job.postprocess || app.postprocess || "";
    const facts: RunFacts = { claimed: r.claimed, state: r.job.state, killed: r.killed, stopping: r.timedOut, stopReason: this.core.stopReason(), outcome, runtimeSeconds, postprocess, job: r.job };
    if (outcome?.exitCode === 0) facts.result = readResult(outFile, outcome.outputBytes);
    else if (outcome && !outcome.lost) facts.outputTail = outputTail(outFile, outcome.outputBytes);
    if (wantsFastFailCount(facts)) facts.fastFailsSoFar = countFastFails((await this.records.read(r.job._id))?.stateHistory ?? []);
    const plan = planAfterRun(facts);
    if (plan.kind === "nothing") return "done";
    if (plan.kind === "give-back") return "give-back";
    if (plan.kind === "handler") {
      await this.handle(r, plan, postprocess, outFile, facts.result);
      return "done";
    }
    const path = this.stagedOut(r, plan.path, plan.stageOut);
    if (!ahead) {
      await this.records.finish(r, path, plan.set, facts.result);
      return "done";
    }
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await this.records.finish(r, [...ahead.steps, ...path], { ...plan.set, workdir: r.job.workdir }, facts.result)) return "done";
      const verdict = await this.records.sameAsQueued(r, ahead.queued);
      if (verdict !== "same") return verdict;
    }
    return "done";
  }

  /** The path itself when there is nothing to stage out or stage-out worked; else the path to FAILED. */
  private stagedOut(r: Running, path: Step[], stage: boolean | undefined): Step[] {
    if (!stage) return path;
    try {
      stageOut(r.job.workdir, r.job);
      return path;
    } catch (err) {
      return stageOutFailed(path, coerceError(err).message);
    }
  }

  /** Records the state the postprocess (or handler) runs in, runs it, and records what 0.x made of the state it left. */
  private async handle(r: Running, plan: Extract<AfterRun, { kind: "handler" }>, postprocess: string, outFile: string, result: unknown): Promise<void> {
    if (!(await this.records.advance(r, { id: r.job._id, from: r.job.state, path: [plan.step], set: plan.set as Partial<Job> }))) return this.records.lostLease(r);
    const as: HandledState = plan.as;
    const p = await this.script("postprocess", postprocess, r, as);
    let left: { released: boolean; state: JobState } | undefined;
    if (p.exitCode === 0) {
      const now = await this.records.afterScript(r, as);
      if (!now) return;
      left = { released: Boolean(r.released), state: now.state };
    }
    const after = planAfterHandler(as, p, left);
    // The announcement carries the run's result: read again after a timeout handler, which may have written it.
    const announced = as === "RUN_DONE" ? result : as === "RUN_TIMEOUT" ? readResult(outFile) : undefined;
    await this.records.finish(r, this.stagedOut(r, after.path, after.stageOut), {}, announced);
  }
}
