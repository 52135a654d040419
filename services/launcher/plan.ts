import type { Job, JobState } from "../../libs/models/index.js";
import type { RunOutcome } from "./runner.js";

/**
 * The launcher's decisions about a job, as pure functions: which states it
 * passes on the way to its run, and what is recorded once the run (or its
 * postprocess, or its error/timeout handler) has ended. Everything here is
 * table-tested in test/unit/launcher.plan.test.ts; the rooms that do I/O
 * (execution.ts) only carry the plans out.
 */

export interface Step {
  state: JobState;
  message?: string;
}

/** 0.x's launcher: a run failing within this is a flaky start, worth a retry (job option fastFailRetries). */
export const FAST_FAIL_SECONDS = 20;
export const FAST_FAIL_MESSAGE = "failed fast: retry";

/** How a process ended, in a state message's words. */
export function describe(o: RunOutcome): string {
  if (o.spawnError) return `could not start: ${o.spawnError}`;
  if (o.lost) return o.lost;
  if (o.timedOut) return "timed out";
  if (o.signal) return `killed by ${o.signal}`;
  return `exit code ${o.exitCode}`;
}

export interface StartPlan {
  /** The states written by the claim, ending in STAGED_IN (stage-in or preprocess to do) or RUNNING. */
  steps: Array<{ state: JobState; message: string }>;
  /**
   * Start the process before anything is recorded (DESIGN §7). Only for a
   * job with no scripts: a 0.x script may set its own job's state, which
   * needs the lease.
   */
  runAhead: boolean;
}

/** The path of a runnable job on this launcher, from its queued state to its run. */
export function planStart(
  job: Pick<Job, "state" | "stageInUrl" | "parents" | "inputFiles" | "stateHistory">,
  f: { appFound: boolean; preprocess: string; postprocess: string; claimAfterMs: number; owner: string },
): StartPlan {
  const needsStage = Boolean(job.stageInUrl) || (job.parents.length > 0 && job.inputFiles.trim() !== "");
  // A restart after its preprocess ran goes straight back to RUNNING, as 0.x's did.
  const restartRun = job.state === "RESTART_READY" && job.stateHistory.some((h) => h.state === "PREPROCESSED");
  const path: JobState[] = restartRun ? ["RUNNING"] : needsStage || f.preprocess ? ["STAGED_IN"] : ["STAGED_IN", "PREPROCESSED", "RUNNING"];
  const steps = path.map((state) => ({ state, message: state === path[0] ? `launcher ${f.owner}` : "" }));
  const runAhead = f.appFound && !f.postprocess && path[path.length - 1] === "RUNNING" && f.claimAfterMs > 0;
  return { steps, runAhead };
}

/** Everything the after-run rule depends on; gathered by execution.ts. */
export interface RunFacts {
  /** Recorded RUNNING under a lease; false while it runs ahead of its claim. */
  claimed: boolean;
  /** The job's recorded state: RUNNING once its process started; earlier when it was stopped before. */
  state: JobState;
  /** `balsam kill` asked for it. */
  killed: boolean;
  /** The launcher is stopping (time limit, signal): the run was cut short. */
  stopping: boolean;
  stopReason: string;
  /** How the process ended; undefined when none was started. */
  outcome?: RunOutcome;
  runtimeSeconds?: number;
  /** The app's (or job's) postprocess script, which also serves as the error and timeout handler. */
  postprocess: string;
  job: Pick<Job, "postErrorHandler" | "postTimeoutHandler" | "autoTimeoutRetry" | "fastFailRetries">;
  /** Fast-fail retries already in the job's history; read only when `wantsFastFailCount` says so. */
  fastFailsSoFar?: number;
  /** The run's result (`data.result`), when it exited 0. */
  result?: unknown;
  /** The last lines of the run's output, for a RUN_ERROR's message. */
  outputTail?: string;
}

export type AfterRun =
  /** Nothing to record: `balsam kill` recorded an unclaimed job USER_KILLED itself. */
  | { kind: "nothing" }
  /** Unclaimed and not ended by the job itself: nothing was recorded, so its queue entry goes back. */
  | { kind: "give-back" }
  /** One write, the job's last on this launcher (it drops the lease); stage out first when `stageOut`. */
  | { kind: "record"; path: Step[]; set: Record<string, unknown>; stageOut?: boolean }
  /** Record `step` (with `set`), run the postprocess in that state, then `planAfterHandler`. */
  | { kind: "handler"; step: Step; set: Record<string, unknown>; as: HandledState };

export type HandledState = "RUN_DONE" | "RUN_ERROR" | "RUN_TIMEOUT";

/** Whether the after-run rule needs the job's count of fast-fail retries (a read: rare, and a snapshot has no history). */
export function wantsFastFailCount(f: Pick<RunFacts, "outcome" | "runtimeSeconds" | "job" | "killed" | "stopping">): boolean {
  const o = f.outcome;
  if (!o || f.killed || f.stopping || o.lost || o.exitCode === 0) return false;
  const fast = (f.runtimeSeconds ?? 0) < FAST_FAIL_SECONDS && (o.exitCode === 1 || o.exitCode === 255 || o.signal === "SIGSEGV");
  return fast && f.job.fastFailRetries > 0;
}

/** The fast-fail retries a job's history shows. */
export function countFastFails(history: ReadonlyArray<{ state: JobState; message: string }>): number {
  return history.filter((h) => h.state === "RESTART_READY" && h.message.startsWith(FAST_FAIL_MESSAGE)).length;
}

const FINISHED: Step[] = [{ state: "RUN_DONE" }, { state: "POSTPROCESSED" }, { state: "JOB_FINISHED" }];

/** What is recorded when a job's run has ended (or was stopped before it began). */
export function planAfterRun(f: RunFacts): AfterRun {
  const o = f.outcome;
  if (!f.claimed) {
    // killjob recorded USER_KILLED itself: the job was queued, not leased.
    if (f.killed) return { kind: "nothing" };
    // Stopping, or its process lost with the spawn helper: nothing was recorded, so the entry simply goes back.
    if (f.stopping || !o || o.lost) return { kind: "give-back" };
  }
  if (f.killed) return record([{ state: "USER_KILLED", message: "killed by user" }], {});
  const timing = f.runtimeSeconds === undefined ? {} : { runtimeSeconds: f.runtimeSeconds };
  if (f.stopping) return afterStop(f, timing);
  if (!o) throw new Error("planAfterRun: a run that neither ran nor was stopped");
  if (o.lost) return record([{ state: "RESTART_READY", message: o.lost }], timing);
  if (o.exitCode === 0) {
    const set: Record<string, unknown> = { exitCode: 0, ...timing };
    if (f.result !== undefined) set["data.result"] = f.result;
    if (f.postprocess) return { kind: "handler", step: { state: "RUN_DONE" }, set, as: "RUN_DONE" };
    return { kind: "record", path: FINISHED, set, stageOut: true };
  }
  const why = describe(o);
  const set = { exitCode: o.exitCode, ...timing };
  const error: Step = { state: "RUN_ERROR", message: f.outputTail ? `${why}; output ends: ${f.outputTail}` : why };
  const retries = f.job.fastFailRetries;
  if (wantsFastFailCount(f) && f.fastFailsSoFar !== undefined && f.fastFailsSoFar < retries) {
    return record([error, { state: "RESTART_READY", message: `${FAST_FAIL_MESSAGE} ${f.fastFailsSoFar + 1} of ${retries}` }], set);
  }
  if (f.job.postErrorHandler && f.postprocess) return { kind: "handler", step: error, set, as: "RUN_ERROR" };
  const reason = f.job.postErrorHandler ? `${why}; post_error_handler is set but the app has no postprocess script` : why;
  return record([error, { state: "FAILED", message: reason }], set);
}

/** A run cut short by the launcher stopping: 0.x's RUN_TIMEOUT rules. */
function afterStop(f: RunFacts, timing: Record<string, unknown>): AfterRun {
  // Stopped before the process started: nothing ran, so it simply runs again elsewhere.
  if (f.state !== "RUNNING") return record([{ state: "RESTART_READY", message: `launcher stopping: ${f.stopReason}` }], timing);
  const timeout: Step = { state: "RUN_TIMEOUT", message: f.stopReason };
  if (f.job.postTimeoutHandler && f.postprocess) return { kind: "handler", step: timeout, set: timing, as: "RUN_TIMEOUT" };
  if (f.job.autoTimeoutRetry) return record([timeout, { state: "RESTART_READY", message: "auto timeout retry" }], timing);
  return record([timeout, { state: "FAILED", message: "timed out; auto_timeout_retry is off" }], timing);
}

function record(path: Step[], set: Record<string, unknown>): AfterRun {
  return { kind: "record", path, set };
}

const HANDLER_NAME: Record<HandledState, string> = { RUN_DONE: "postprocess", RUN_ERROR: "error handler", RUN_TIMEOUT: "timeout handler" };

/**
 * After a postprocess or handler: what 0.x made of it (transitions.py:498-515).
 * `left` is the job as the script left it (read only when it exited 0):
 * `released` when the script set the state itself (its write drops the lease).
 */
export function planAfterHandler(as: HandledState, handler: RunOutcome, left?: { released: boolean; state: JobState }): { path: Step[]; stageOut?: boolean } {
  if (handler.exitCode !== 0) return { path: [{ state: "FAILED", message: `${HANDLER_NAME[as]} ${describe(handler)}` }] };
  if (!left) throw new Error("planAfterHandler: a handler that exited 0 needs the state it left");
  if (left.released) {
    if (left.state === "POSTPROCESSED") return { path: [{ state: "JOB_FINISHED" }], stageOut: true };
    return { path: [{ state: "FAILED", message: `its postprocess left it ${left.state}, from which no launcher goes on` }] };
  }
  if (as === "RUN_DONE") return { path: [{ state: "POSTPROCESSED" }, { state: "JOB_FINISHED" }], stageOut: true };
  const what = as === "RUN_ERROR" ? "Error handling didn't fix job state" : "Timeout handling didn't change job state";
  return { path: [{ state: "FAILED", message: `${what}: marking FAILED` }] };
}

/** A path whose stage-out failed: the steps before the job counts as postprocessed, then FAILED. */
export function stageOutFailed(path: readonly Step[], message: string): Step[] {
  const cut = path.findIndex((s) => s.state === "POSTPROCESSED" || s.state === "JOB_FINISHED");
  return [...(cut < 0 ? path : path.slice(0, cut)), { state: "FAILED", message: `stage-out failed: ${message}` }];
}
