import { ACTIVE_STATES, RUNNABLE_STATES, type Job } from "../models/index.js";
import { recordTransitions, type Store, type Transition } from "../store/index.js";
import type { JobQueues } from "../queue/index.js";
import { queueItem } from "./jobs.js";

/**
 * Jobs whose launcher stopped renewing its lease (killed, node lost) become
 * RESTART_READY with a new attempt and go back in their queue — or
 * USER_KILLED when a kill was asked for while the launcher was gone. Every
 * write is conditioned on the state and the dead owner, so a launcher that
 * was only slow and renews in time keeps its job. Returns the ids recovered.
 */
export async function recoverLapsedLeases(store: Store, queues: JobQueues, now = new Date(), limit = 1000): Promise<string[]> {
  const lapsed = await store.jobs
    .find({ state: { $in: [...ACTIVE_STATES] }, "lock.until": { $lt: now } } as never, { limit })
    .toArray();
  if (lapsed.length === 0) return [];
  const ts: Transition[] = lapsed.map((j) => {
    const killed = Boolean((j as Job & { killRequestedAt?: Date }).killRequestedAt);
    return {
      id: j._id,
      from: j.state,
      owner: j.lock?.owner ?? null,
      path: [
        killed
          ? { state: "USER_KILLED" as const, message: `killed while launcher ${j.lock?.owner} was lost` }
          : { state: "RESTART_READY" as const, message: `lease of launcher ${j.lock?.owner} lapsed` },
      ],
      set: { lock: null },
      ...(killed ? {} : { inc: { attempts: 1 } }),
    };
  });
  const lost = new Set(await recordTransitions(store, ts));
  const restarted = lapsed.filter((j, i) => !lost.has(j._id) && ts[i]!.path[0]!.state === "RESTART_READY");
  await queues.enqueue(restarted.map((j) => queueItem({ ...j, attempts: j.attempts + 1 })));
  return lapsed.filter((j) => !lost.has(j._id)).map((j) => j._id);
}

/**
 * Puts back in their queues the runnable jobs (of the given workflows) —
 * idempotent, so it heals a flushed or restarted Redis. Returns how many
 * entries were offered.
 */
export async function reenqueueRunnable(store: Store, queues: JobQueues, workflows?: string[]): Promise<number> {
  const q: Record<string, unknown> = { state: { $in: [...RUNNABLE_STATES] } };
  if (workflows) q.workflow = { $in: workflows };
  let n = 0;
  const cursor = store.jobs.find(q as never, { projection: { _id: 1, workflow: 1, attempts: 1, numNodes: 1 } });
  let batch: Job[] = [];
  for await (const j of cursor) {
    batch.push(j);
    if (batch.length >= 2000) {
      n += await queues.enqueue(batch.map(queueItem));
      batch = [];
    }
  }
  n += await queues.enqueue(batch.map(queueItem));
  return n;
}
