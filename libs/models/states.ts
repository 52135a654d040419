/**
 * Balsam's job states and the one transition table every writer uses
 * (the launcher, the service, `balsam modify`, the client API).
 */
export const JOB_STATES = [
  "CREATED",
  "AWAITING_PARENTS",
  "READY",
  "STAGED_IN",
  "PREPROCESSED",
  "RUNNING",
  "RUN_DONE",
  "POSTPROCESSED",
  "JOB_FINISHED",
  "RUN_TIMEOUT",
  "RUN_ERROR",
  "RESTART_READY",
  "FAILED",
  "USER_KILLED",
] as const;

export type JobState = (typeof JOB_STATES)[number];

export const FINAL_STATES: readonly JobState[] = ["JOB_FINISHED", "FAILED", "USER_KILLED"];
/** States in which a job sits in its workflow's queue waiting for a launcher. */
export const RUNNABLE_STATES: readonly JobState[] = ["READY", "RESTART_READY"];
/** States in which a launcher holds the job's lease. */
export const ACTIVE_STATES: readonly JobState[] = [
  "STAGED_IN",
  "PREPROCESSED",
  "RUNNING",
  "RUN_DONE",
  "RUN_ERROR",
  "RUN_TIMEOUT",
  "POSTPROCESSED",
];
/** States before a job becomes runnable. */
export const WAITING_STATES: readonly JobState[] = ["CREATED", "AWAITING_PARENTS"];

/** Where a rerun takes a final job; which one its parents decide (jobs.rerun). */
export const RERUN_TARGETS: readonly JobState[] = ["READY", "AWAITING_PARENTS", "RESTART_READY"];

/**
 * The states `balsam modify ID state S` reads as "run this final job again":
 * the rerun targets, and CREATED, Balsam 0.x's way of saying it (0.x let any
 * state be set; its recipe for a failed job was `modify ID state CREATED`).
 */
export const RERUN_REQUESTS: readonly JobState[] = ["CREATED", ...RERUN_TARGETS];

// Every non-final state may go to USER_KILLED; listed once here rather than on each row.
const KILLABLE: readonly JobState[] = JOB_STATES.filter((s) => !FINAL_STATES.includes(s));

const TABLE: Record<JobState, readonly JobState[]> = {
  CREATED: ["AWAITING_PARENTS", "READY", "FAILED"],
  AWAITING_PARENTS: ["READY", "FAILED"],
  // READY → AWAITING_PARENTS: `balsam dep` gave the job a parent that has not finished.
  READY: ["STAGED_IN", "AWAITING_PARENTS", "FAILED"],
  // Active states may go to RESTART_READY when their launcher's lease lapses.
  STAGED_IN: ["PREPROCESSED", "FAILED", "RESTART_READY"],
  PREPROCESSED: ["RUNNING", "FAILED", "RESTART_READY"],
  RUNNING: ["RUN_DONE", "RUN_ERROR", "RUN_TIMEOUT", "RESTART_READY", "FAILED"],
  RUN_DONE: ["POSTPROCESSED", "FAILED", "RESTART_READY"],
  RUN_ERROR: ["POSTPROCESSED", "FAILED", "RESTART_READY"],
  RUN_TIMEOUT: ["RESTART_READY", "POSTPROCESSED", "FAILED"],
  POSTPROCESSED: ["JOB_FINISHED", "FAILED", "RESTART_READY"],
  // A restarted job runs again; if its earlier attempt never reached
  // PREPROCESSED it is staged in again.
  RESTART_READY: ["RUNNING", "STAGED_IN", "AWAITING_PARENTS", "FAILED"],
  // A rerun (`balsam rerun`, `modify ID state READY|CREATED`, `jobs.rerun`):
  // a final job goes back to READY — or AWAITING_PARENTS while a parent has
  // not finished — and RESTART_READY when asked for by name (no new stage-in).
  JOB_FINISHED: RERUN_TARGETS,
  FAILED: RERUN_TARGETS,
  USER_KILLED: RERUN_TARGETS,
};

export function isJobState(s: string): s is JobState {
  return (JOB_STATES as readonly string[]).includes(s);
}

export function isFinal(s: JobState): boolean {
  return FINAL_STATES.includes(s);
}

export function isRunnable(s: JobState): boolean {
  return RUNNABLE_STATES.includes(s);
}

export function isActive(s: JobState): boolean {
  return ACTIVE_STATES.includes(s);
}

/** The states a job in `from` may move to. */
export function allowedTransitions(from: JobState): readonly JobState[] {
  const row = TABLE[from];
  return isFinal(from) ? row : [...row, "USER_KILLED"];
}

export function canTransition(from: JobState, to: JobState): boolean {
  return allowedTransitions(from).includes(to);
}

/** True when every step of `path` (starting at `from`) is allowed: a fast-forward. */
export function canTransitionPath(from: JobState, path: readonly JobState[]): boolean {
  let cur = from;
  for (const next of path) {
    if (!canTransition(cur, next)) return false;
    cur = next;
  }
  return true;
}

export { KILLABLE as KILLABLE_STATES };

/**
 * The shortest path of allowed steps from `from` to `to` (excluding
 * `from`), or undefined when there is none: how a job's own script sets any
 * state, as 0.x let it, while the history shows every step the table knows.
 */
export function transitionPath(from: JobState, to: JobState): JobState[] | undefined {
  const prev = new Map<JobState, JobState>([[from, from]]);
  const queue: JobState[] = [from];
  while (queue.length) {
    const cur = queue.shift()!;
    if (cur === to && cur !== from) break;
    for (const next of allowedTransitions(cur)) {
      if (prev.has(next)) continue;
      prev.set(next, cur);
      queue.push(next);
    }
  }
  if (!prev.has(to) || to === from) return undefined;
  const path: JobState[] = [];
  for (let s = to; s !== from; s = prev.get(s)!) path.unshift(s);
  return path;
}
