import { isRunnable, launchSnapshot, type Job } from "../models/index.js";
import { runnableOfChunk } from "../store/index.js";
import type { QueueItem } from "../queue/index.js";
import type { JobsContext } from "./context.js";

/**
 * The queue entry of a job. Given the whole runnable document as it is
 * stored, the entry carries its launch snapshot too, so the launcher that
 * takes it reads nothing; a stale one only costs that launcher a read.
 * A job added in a chunk is offered through its chunk's entry at attempt 0;
 * its snapshot is kept beside the chunk's entry when the chunk is made, and
 * taken out by any later offer or removal (JobQueues.takeSnapshots).
 */
export function queueItem(j: Pick<Job, "_id" | "workflow" | "attempts" | "numNodes"> & Partial<Job>): QueueItem {
  const item: QueueItem = { id: j._id, workflow: j.workflow, attempts: j.attempts, numNodes: j.numNodes };
  if (j.chunk && j.attempts === 0) item.chunk = j.chunk;
  if (j.updatedAt && j.stateHistory && j.application !== undefined && j.state && isRunnable(j.state)) {
    const spec = launchSnapshot(j as Job);
    if (spec) item.spec = spec;
  }
  return item;
}

/**
 * Removes the queue entries of jobs that no longer need them (deleted,
 * killed, taken back). A chunk's entry offers its other jobs too: it goes
 * only when none of them is still offered by it (runnable, never
 * restarted), whether they went in this call or earlier (an interrupted or
 * batched removal leaves no entry behind once its last job goes). Returns
 * how many entries were removed.
 */
export async function dropEntries(ctx: JobsContext, items: readonly QueueItem[]): Promise<number> {
  let n = await ctx.queues.remove(items);
  const chunked = items.filter((it) => it.chunk && it.attempts === 0);
  if (chunked.length === 0) return n;
  const gone = new Set(chunked.map((it) => it.id));
  const empty: QueueItem[] = [];
  for (const [chunk, { workflow, ids }] of await ctx.queues.chunkJobs(chunked)) {
    const others = ids.filter((id) => !gone.has(id));
    if (others.length === 0 || (await runnableOfChunk(ctx.store, chunk, others)).length === 0) empty.push({ id: ids[0]!, workflow, attempts: 0, chunk });
  }
  n += await ctx.queues.remove(empty, { wholeChunks: true });
  return n;
}
