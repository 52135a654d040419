import type { JobState } from "../models/index.js";

/*
 * Every Redis pub/sub channel Balsam uses, with the shape of its messages.
 * Channels are named under the queue prefix (JobQueues.channel). Delivery
 * is at most once: each has a safety net that reads MongoDB.
 */

/** A workflow got its first queue entry; message "new". Launchers consuming all workflows start a worker on it (net: a 2 s poll). */
export const WORKFLOWS_CHANNEL = "workflows";

/** A kill was asked for; message: the job id. The launcher running it stops its process (net: `killRequestedAt`, read at lease recovery). */
export const KILL_CHANNEL = "kill";

/** Jobs reached a final state; message: one FinishedJob as JSON, or an array of them (the jobs of one write). Net: results() re-reads MongoDB. */
export const FINISHED_CHANNEL = "finished";

/** A job that reached a final state, as it is announced. */
export interface FinishedJob {
  id: string;
  name: string;
  workflow: string;
  state: JobState;
  /** `data.result`: the last `DH-OUTPUT:` number or `BALSAM-RESULT:` JSON the job printed. */
  result?: unknown;
}

/** The finished channel's message for `list` (not empty): one object for one job, an array for more. */
export function encodeFinished(list: readonly FinishedJob[]): string {
  return JSON.stringify(list.length === 1 ? list[0] : list);
}

/**
 * The jobs a message on the finished channel announces: one object, or an
 * array of them. Anything else is not an announcement of ours.
 */
export function parseFinished(msg: string): FinishedJob[] {
  let v: unknown;
  try {
    v = JSON.parse(msg);
  } catch {
    return [];
  }
  return (Array.isArray(v) ? v : [v]).filter((f): f is FinishedJob => typeof (f as FinishedJob | null)?.id === "string");
}
