import { JOB_DEFAULTS, overDefaults, type Job } from "./job.js";
import type { JobState } from "./states.js";

/**
 * The fields a launcher needs to run a job. A queue entry carries them, so a
 * launcher reads nothing from MongoDB per job (DESIGN §7); its write is then
 * conditioned on `updatedAt`, so a job changed after it was queued
 * (`balsam modify`, a kill, a delete) fails that write and is read afresh.
 */
const LAUNCH_FIELDS = [
  "name",
  "workflow",
  "application",
  "args",
  "state",
  "attempts",
  "parents",
  "hasChildren",
  "numNodes",
  "ranksPerNode",
  "threadsPerRank",
  "threadsPerCore",
  "cpuAffinity",
  "nodePackingCount",
  "gpusPerRank",
  "wallTimeMinutes",
  "mpiFlags",
  "environVars",
  // `launcher --tag` decides from the entry alone whether a job is its to run.
  "tags",
  "inputFiles",
  "stageInUrl",
  "stageOutFiles",
  "stageOutUrl",
  "postErrorHandler",
  "postTimeoutHandler",
  "autoTimeoutRetry",
  "fastFailRetries",
  "workdir",
  "preprocess",
  "postprocess",
] as const satisfies ReadonlyArray<keyof Job>;

type LaunchField = (typeof LAUNCH_FIELDS)[number];

/** Whether changing this field changes how a queued job runs (its queue entry's snapshot then needs replacing). */
export function isLaunchField(key: string): boolean {
  return (LAUNCH_FIELDS as readonly string[]).includes(key);
}

/**
 * A job as its queue entry carries it: the launch fields that differ from
 * their defaults, `v` its `updatedAt` in ms, `pre` whether it was
 * preprocessed before (a restart then goes straight to RUNNING).
 */
export type LaunchSnapshot = Partial<Pick<Job, LaunchField>> & Pick<Job, "name" | "workflow" | "application" | "state" | "attempts"> & { v: number; pre?: true };

/**
 * Past this size an entry carries only the id: a million queued jobs with
 * long argument lists would otherwise cost Redis more memory than the reads
 * they save.
 */
export const MAX_SNAPSHOT_BYTES = 4096;

const DEFAULTS: Record<string, unknown> = JOB_DEFAULTS;

function same(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === "object" && a !== null && JSON.stringify(a) === JSON.stringify(b));
}

/** The snapshot of a whole job document; undefined when it would be too large to be worth carrying. */
export function launchSnapshot(j: Job): LaunchSnapshot | undefined {
  const s: Record<string, unknown> = { v: j.updatedAt.getTime() };
  for (const k of LAUNCH_FIELDS) {
    const v = j[k];
    if (v === undefined || (k in DEFAULTS && same(v, DEFAULTS[k]))) continue;
    s[k] = v;
  }
  // Always present: the entry is useless without them and they are short.
  s.name = j.name;
  s.workflow = j.workflow;
  s.application = j.application;
  s.state = j.state;
  s.attempts = j.attempts;
  if (j.stateHistory.some((h) => h.state === "PREPROCESSED")) s.pre = true;
  if (JSON.stringify(s).length > MAX_SNAPSHOT_BYTES) return undefined;
  return s as LaunchSnapshot;
}

/**
 * A job document good enough to run from a snapshot. Fields a launcher does
 * not use stay empty; `stateHistory` holds only what decides the path (a
 * PREPROCESSED entry for a restart).
 */
export function jobFromSnapshot(id: string, s: LaunchSnapshot): Job {
  const at = new Date(s.v);
  const j = overDefaults(s, (k) => k !== "v" && k !== "pre");
  j._id = id;
  j.description = "";
  j.coscheduleNumNodes = 0;
  j.stateHistory = s.pre ? [{ at, state: "PREPROCESSED" as JobState, message: "" }] : [];
  j.lock = null;
  j.exitCode = null;
  j.runtimeSeconds = null;
  j.createdAt = at;
  j.updatedAt = at;
  return j as unknown as Job;
}

/**
 * Whether two documents of a job would run the same way: a write that
 * failed only because something else about the job changed (a parent added
 * it as a child, a description edited) can be retried on the fresh version.
 */
export function sameLaunch(a: Job, b: Job): boolean {
  const sa = launchSnapshot(a);
  const sb = launchSnapshot(b);
  if (!sa || !sb) return LAUNCH_FIELDS.every((k) => same(a[k], b[k]));
  const strip = (s: LaunchSnapshot) => JSON.stringify({ ...s, v: 0, hasChildren: undefined });
  return strip(sa) === strip(sb);
}
