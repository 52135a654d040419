import type { Job } from "../models/index.js";
import { DEFAULT_MAX_LEASE_LAPSES } from "../config/index.js";
import { lapsedLeases, recordTransitions, runnablePointers, serverTime, type Store, type Transition } from "../store/index.js";
import type { JobQueues } from "../queue/index.js";
import { queueItem } from "./queue-item.js";
import { announceFinished } from "./finished.js";
import { releaseChildren } from "./release.js";

export interface RecoverOptions {
  /** Leases that end before this have lapsed. Default: the database server's time now (serverTime). */
  now?: Date;
  /** Jobs handled per call. Default 1000. */
  limit?: number;
  /** The lapse that reaches this count fails the job instead of restarting it. Default DEFAULT_MAX_LEASE_LAPSES. */
  maxLeaseLapses?: number;
}

/** Recovery's message, and a fenced launcher's own (services/launcher/fence.ts). */
const LAPSED = /^lease of launcher .* lapsed$|^fenced: /;

/**
 * How many times the job's lease lapsed before, read from its history: the
 * messages recovery writes, and those of launchers that fenced themselves. Read, not a counter field, so jobs recovered
 * before the cap existed count too.
 */
export function leaseLapses(job: Pick<Job, "stateHistory">): number {
  return job.stateHistory.filter((h) => h.state === "RESTART_READY" && LAPSED.test(h.message)).length;
}

function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : (["th", "st", "nd", "rd"][n % 10] ?? "th");
  return `${n}${suffix}`;
}

/**
 * Jobs whose launcher stopped renewing its lease (killed, node lost) become
 * RESTART_READY with a new attempt and go back in their queue — or
 * USER_KILLED when a kill was asked for while the launcher was gone, or
 * FAILED on their `maxLeaseLapses`-th lapse: a job that keeps taking its
 * launcher down would otherwise run for ever. Every write is conditioned on
 * the state and the dead owner, so a launcher that was only slow and renews
 * in time keeps its job. Returns the ids recovered.
 */
export async function recoverLapsedLeases(store: Store, queues: JobQueues, opts: RecoverOptions = {}): Promise<string[]> {
  const { limit = 1000, maxLeaseLapses = DEFAULT_MAX_LEASE_LAPSES } = opts;
  // The server's clock, not this process's: a lease's end was computed on it too, whatever the clocks of the nodes say.
  const now = opts.now ?? (await serverTime(store));
  const lapsed = await lapsedLeases(store, now, limit);
  if (lapsed.length === 0) return [];
  const ts: Transition[] = lapsed.map((j) => {
    const owner = j.lock?.owner;
    const base = { id: j._id, from: j.state, owner: owner ?? null, lapsedBefore: now, set: { lock: null } };
    if ((j as Job & { killRequestedAt?: Date }).killRequestedAt) {
      return { ...base, path: [{ state: "USER_KILLED" as const, message: `killed while launcher ${owner} was lost` }] };
    }
    const n = leaseLapses(j) + 1;
    if (n >= maxLeaseLapses) {
      const message = `lease of launcher ${owner} lapsed for the ${ordinal(n)} time (maxLeaseLapses ${maxLeaseLapses}): not restarted; the job's output file may say why its launchers were lost`;
      return { ...base, path: [{ state: "FAILED" as const, message }] };
    }
    return { ...base, path: [{ state: "RESTART_READY" as const, message: `lease of launcher ${owner} lapsed` }], inc: { attempts: 1 } };
  });
  const at = new Date();
  const lost = new Set(await recordTransitions(store, ts, at));
  const won = lapsed.map((j, i) => ({ j, state: ts[i]!.path[0]!.state })).filter(({ j }) => !lost.has(j._id));
  await queues.enqueue(won.filter((w) => w.state === "RESTART_READY").map(({ j }) => queueItem({ ...j, state: "RESTART_READY", attempts: j.attempts + 1, lock: null, updatedAt: at })));
  const ended = won.filter((w) => w.state !== "RESTART_READY");
  // Told as a launcher tells it, so a search waiting on results() hears of it.
  await announceFinished(queues, ended.map(({ j, state }) => ({ id: j._id, workflow: j.workflow, name: j.name, state })));
  const parents = ended.filter(({ j }) => j.hasChildren).map(({ j }) => j._id);
  await releaseChildren({ store, queues }, parents);
  return won.map(({ j }) => j._id);
}

/**
 * Puts back in their queues the runnable jobs (of the given workflows) —
 * idempotent, so it heals a flushed or restarted Redis. Returns how many
 * entries were offered.
 */
export async function reenqueueRunnable(store: Store, queues: JobQueues, workflows?: string[]): Promise<number> {
  let n = 0;
  const cursor = runnablePointers(store, workflows);
  let batch: Array<Pick<Job, "_id" | "workflow" | "attempts" | "numNodes" | "chunk">> = [];
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
