import type { Store } from "../store/index.js";
import type { JobQueues } from "../queue/index.js";

/** What every jobs operation works on: the store and the queues (JobsApi and Balsam are both one). */
export interface JobsContext {
  readonly store: Store;
  readonly queues: JobQueues;
}

/** For operations over many jobs: stop between chunks when `signal` aborts, and hear the running count. */
export interface ProgressOptions {
  signal?: AbortSignal;
  /** After each chunk: how many jobs have been dealt with, of how many. */
  onProgress?: (done: number, total: number) => void;
}
