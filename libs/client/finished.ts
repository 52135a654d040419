import { encodeFinished, FINISHED_CHANNEL, type FinishedJob, type JobQueues } from "../queue/index.js";

/**
 * Tells the finished channel that jobs reached a final state: the one way
 * every writer (launcher, recovery, setState) announces it, so a search
 * waiting on results() hears within milliseconds. A lost message costs
 * only latency: results() re-reads MongoDB.
 */
export async function announceFinished(queues: JobQueues, list: readonly FinishedJob[]): Promise<void> {
  if (list.length === 0) return;
  await queues.publish(FINISHED_CHANNEL, encodeFinished(list)).catch(() => undefined);
}
