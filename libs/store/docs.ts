/*
 * The documents of the small collections (jobs and apps are libs/models' Job and App).
 */

/** A running launcher, written by itself on start and on every heartbeat. */
export interface LauncherDoc {
  _id: string;
  host: string;
  pid: number;
  mode: "serial" | "mpi";
  workflows: string[] | null;
  nodes: string[];
  startedAt: Date;
  heartbeat: Date;
  state: "running" | "exited";
  /** Jobs it was running at its last heartbeat. */
  inFlight?: number;
}

/** A launcher batch job submitted by submit-launch or the service. */
export interface QueuedLaunchDoc {
  _id: string;
  schedulerId: string;
  scheduler: string;
  queue: string;
  project: string;
  nodes: number;
  wallTimeMinutes: number;
  jobMode: "serial" | "mpi";
  wfFilter: string[];
  /** queued | running | finished | failed | unknown, as last seen from the scheduler. */
  state: string;
  scriptPath: string;
  submittedAt: Date;
  updatedAt: Date;
  /** The directory holding the rendered script and the batch job's output. */
  launchDir?: string;
  submittedBy?: "submit-launch" | "service";
  /** The batch script's exit status, once it wrote one. */
  exitCode?: number | null;
  /** The host that submitted it (a `local` launch is a process there). */
  host?: string;
}
