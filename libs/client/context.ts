import type { Store } from "../store/index.js";
import type { JobQueues } from "../queue/index.js";
import type { JobLimits } from "../models/index.js";

/** What every jobs operation works on: the store and the queues (JobsApi and Balsam are both one). */
export interface JobsContext {
  readonly store: Store;
  readonly queues: JobQueues;
  /** What the settings say every job must fit (GPUs per node); checked on add and modify. */
  readonly limits?: JobLimits;
}

/** For operations over many jobs: stop between chunks when `signal` aborts, and hear the running count. */
export interface ProgressOptions {
  signal?: AbortSignal;
  /** After each chunk: how many jobs have been dealt with, of how many. */
  onProgress?: (done: number, total: number) => void;
}
