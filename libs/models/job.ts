import type { JobState } from "./states.js";

export interface StateHistoryEntry {
  at: Date;
  state: JobState;
  message: string;
}

/**
 * Upper bound of a job's counts (nodes, ranks, threads, packing, wall-time
 * minutes). The largest machine has 158,976 nodes (Fugaku): past a million a
 * count is a typo, and past 2^53 it would not even survive as a number
 * (`--num-nodes 99999999999999999999` was stored as 1e20).
 */
export const MAX_JOB_COUNT = 1_000_000;

/** The lease a launcher holds on a job while it works on it. */
export interface JobLock {
  owner: string;
  until: Date;
}

/** A Balsam job as stored in MongoDB (`_id` is `job_id` on the command line). */
export interface Job {
  _id: string;
  name: string;
  workflow: string;
  application: string;
  args: string;
  description: string;
  state: JobState;
  stateHistory: StateHistoryEntry[];
  parents: string[];
  /** Set when another job lists this one as a parent, so finishing it only looks for children when there are some. */
  hasChildren: boolean;
  /**
   * Which bulk statement last changed the state (`<bulk id>:<index>`), so a
   * writer can tell its own write from a rival's when a bulk's counts say
   * some statements did not match.
   */
  writeToken?: string;
  /**
   * The queue entry of the chunk the job was added in (jobs added together
   * share one entry: libs/client/add.ts); absent for a job queued alone.
   * Until its first restart the job is offered only through that entry.
   */
  chunk?: string;
  data: Record<string, unknown>;
  numNodes: number;
  ranksPerNode: number;
  threadsPerRank: number;
  threadsPerCore: number;
  cpuAffinity: "none" | "depth";
  nodePackingCount: number;
  /**
   * Whole GPUs each rank gets (Balsam 2's `gpus_per_rank`); a job takes
   * `gpusPerRank * ranksPerNode` GPUs on each of its nodes. 0: the launcher
   * hands it none and sets no device variable.
   */
  gpusPerRank: number;
  coscheduleNumNodes: number;
  wallTimeMinutes: number;
  mpiFlags: string;
  environVars: Record<string, string>;
  /** Labels (Balsam 2's `tags`): selectors of ls/rm/rerun/killjob/modify, the API, and `launcher --tag` (see tags.ts). */
  tags: Record<string, string>;
  inputFiles: string;
  stageInUrl: string;
  stageOutFiles: string;
  stageOutUrl: string;
  postErrorHandler: boolean;
  postTimeoutHandler: boolean;
  autoTimeoutRetry: boolean;
  /**
   * Runs that fail fast (within 20 s, exit code 1 or 255, or SIGSEGV) are
   * restarted up to this many times, as Balsam 0.x's launcher did for
   * flaky starts (a node's first MPI init, a file system hiccup); 0 fails at once.
   */
  fastFailRetries: number;
  waitForParents: boolean;
  workdir: string;
  preprocess: string;
  postprocess: string;
  lock: JobLock | null;
  attempts: number;
  exitCode: number | null;
  runtimeSeconds: number | null;
  queuedLaunch: string | null;
  /** Set by `kill` on a job a launcher holds, so a lapsed lease ends in USER_KILLED, not a restart. */
  killRequestedAt?: Date;
  /**
   * The parent whose failure or kill failed this job (it never ran): a rerun
   * of that parent re-arms this job (FAILED → AWAITING_PARENTS).
   */
  failedByParent?: string;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * Balsam 0.x's `cute_id`, how its logs and "spawned by" history lines name a
 * job: `[name | first 8 of id]`, or `[first 8 of id]` for a job with no name.
 */
export function cuteId(job: Pick<Job, "_id" | "name">): string {
  const short = job._id.slice(0, 8);
  return job.name ? `[${job.name} | ${short}]` : `[${short}]`;
}

export interface App {
  _id: string;
  name: string;
  executable: string;
  preprocess: string;
  postprocess: string;
  envscript: string;
  description: string;
  createdAt: Date;
}

/** What a caller gives to create a job; everything but the three names has a default. */
export type JobSpec = Pick<Job, "name" | "workflow" | "application"> &
  Partial<
    Omit<
      Job,
      | "_id"
      | "name"
      | "workflow"
      | "application"
      | "state"
      | "stateHistory"
      | "lock"
      | "attempts"
      | "exitCode"
      | "runtimeSeconds"
      | "hasChildren"
      | "chunk"
      | "killRequestedAt"
      | "failedByParent"
      | "createdAt"
      | "updatedAt"
    >
  > & { _id?: string };

export type AppSpec = Pick<App, "name" | "executable"> & Partial<Omit<App, "_id" | "name" | "executable" | "createdAt">>;

/**
 * A fresh copy of a job's defaults, made by one object literal: objects made
 * so share one hidden class, and fields written onto them afterwards follow
 * its cached transitions. Spreading a 30-field object and adding fields to
 * the copy made a new hidden class on every call (~50 µs a job, measured; a
 * launcher builds one per job from its snapshot, a search one per job added).
 */
export function jobDefaults() {
  return {
    args: "",
    description: "",
    parents: [] as string[],
    hasChildren: false,
    data: {} as Record<string, unknown>,
    numNodes: 1,
    ranksPerNode: 1,
    threadsPerRank: 1,
    threadsPerCore: 1,
    cpuAffinity: "none" as const,
    nodePackingCount: 1,
    gpusPerRank: 0,
    coscheduleNumNodes: 0,
    wallTimeMinutes: 1,
    mpiFlags: "",
    environVars: {} as Record<string, string>,
    tags: {} as Record<string, string>,
    inputFiles: "*",
    stageInUrl: "",
    stageOutFiles: "",
    stageOutUrl: "",
    postErrorHandler: false,
    postTimeoutHandler: false,
    autoTimeoutRetry: true,
    fastFailRetries: 3,
    waitForParents: true,
    workdir: "",
    preprocess: "",
    postprocess: "",
    queuedLaunch: null,
  };
}

export const JOB_DEFAULTS = jobDefaults();

/**
 * Fresh defaults with `given`'s fields written over them, in `given`'s order,
 * leaving out those `keep` refuses: the start of every job document built
 * here (buildJob, jobFromSnapshot), on jobDefaults' one hidden class.
 */
export function overDefaults(given: object, keep: (key: string, value: unknown) => boolean): Record<string, unknown> {
  const j: Record<string, unknown> = jobDefaults();
  const from = given as Record<string, unknown>;
  for (const k of Object.keys(from)) if (keep(k, from[k])) j[k] = from[k];
  return j;
}
