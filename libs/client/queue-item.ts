import { isRunnable, launchSnapshot, type Job } from "../models/index.js";
import type { QueueItem } from "../queue/index.js";

/**
 * The queue entry of a job. Given the whole runnable document as it is
 * stored, the entry carries its launch snapshot too, so the launcher that
 * takes it reads nothing; a stale one only costs that launcher a read.
 */
export function queueItem(j: Pick<Job, "_id" | "workflow" | "attempts" | "numNodes"> & Partial<Job>): QueueItem {
  const item: QueueItem = { id: j._id, workflow: j.workflow, attempts: j.attempts, numNodes: j.numNodes };
  if (j.updatedAt && j.stateHistory && j.application !== undefined && j.state && isRunnable(j.state)) {
    const spec = launchSnapshot(j as Job);
    if (spec) item.spec = spec;
  }
  return item;
}
