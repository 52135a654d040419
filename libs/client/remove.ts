import { isActive, isFinal, isRunnable, type Job } from "../models/index.js";
import { ConflictError, UsageError } from "../errors/index.js";
import { chunked, deleteJobsByIds, descendantsOf, findJobs, getJob, isEmptyFilter, markKillRequested, MAX_IN_IDS, recordTransitions, serverTime, type JobFilter } from "../store/index.js";
import { KILL_CHANNEL } from "../queue/index.js";
import { dropEntries, queueItem } from "./queue-item.js";
import { leaseLive } from "./lease.js";
import { releaseChildren } from "./release.js";
import type { JobsContext, ProgressOptions } from "./context.js";

/** What deleting a job needs to know of it. */
export type DeleteVictim = Pick<Job, "_id" | "name" | "workflow" | "attempts" | "state" | "lock"> & Partial<Pick<Job, "chunk">>;

/**
 * Deletes matching jobs and their queue entries. An empty filter deletes
 * nothing; jobs a launcher is running are refused unless `evenIfRunning`.
 */
export async function deleteWhere(ctx: JobsContext, f: JobFilter, opts: { evenIfRunning?: boolean } = {}): Promise<number> {
  if (isEmptyFilter(f)) throw new UsageError("refusing to delete with an empty filter");
  const victims = await findJobs(ctx.store, f, { projection: { _id: 1, name: 1, workflow: 1, attempts: 1, state: 1, lock: 1, chunk: 1 } });
  return deleteJobs(ctx, victims, opts);
}

/**
 * Deletes the given jobs and their queue entries, a chunk at a time; with
 * `signal`, a stop is heeded between chunks only, so every job is either
 * gone with its queue entry or untouched. Returns how many were deleted;
 * `onProgress` hears how many jobs have been dealt with after each chunk.
 */
export async function deleteJobs(ctx: JobsContext, victims: ReadonlyArray<DeleteVictim>, opts: ProgressOptions & { evenIfRunning?: boolean } = {}): Promise<number> {
  if (!opts.evenIfRunning) await refuseRunning(ctx, victims);
  let n = 0;
  let done = 0;
  for (const chunk of chunked([...victims], MAX_IN_IDS)) {
    if (opts.signal?.aborted) break;
    n += await deleteJobsByIds(ctx.store, chunk.map((v) => v._id));
    await dropEntries(ctx, chunk.filter((v) => isRunnable(v.state)).map((v) => ({ id: v._id, workflow: v.workflow, attempts: v.attempts, chunk: v.chunk })));
    done += chunk.length;
    opts.onProgress?.(done, victims.length);
  }
  return n;
}

/**
 * Refuses to delete jobs a launcher is running (an active state under a
 * lease that has not lapsed): the record would go while the process runs
 * on, with nothing left to report to and no way to kill it by id.
 */
export async function refuseRunning(ctx: JobsContext, victims: ReadonlyArray<Pick<Job, "_id" | "name" | "state" | "lock">>): Promise<void> {
  const now = await serverTime(ctx.store);
  const running = victims.filter((j) => leaseLive(j, now));
  if (running.length === 0) return;
  const shown = running.slice(0, 5).map((j) => `${j.name} (${j._id})`).join(", ");
  const more = running.length > 5 ? ` and ${running.length - 5} more` : "";
  throw new ConflictError(`${running.length} of the job(s) to remove ${running.length === 1 ? "is" : "are"} running: ${shown}${more}`, {
    hint: "stop them first with `balsam killjob --id ID`; `rm --force` removes the records while their processes run on",
  });
}

/**
 * Kills a job and, unless `recursive: false`, every job depending on it
 * (as Balsam 0.x's `dag.kill`): USER_KILLED. Jobs a launcher is running
 * are asked through Redis; the launcher stops the process and records the
 * kill. Without `recursive`, waiting children are FAILED instead (their
 * parent will never finish). Returns the ids killed.
 */
export async function kill(ctx: JobsContext, idOrPrefix: string, opts: { recursive?: boolean } = {}): Promise<string[]> {
  const job = await getJob(ctx.store, idOrPrefix);
  const targets = [job, ...(opts.recursive !== false ? await descendantsOf(ctx.store, [job._id]) : [])].filter((j) => !isFinal(j.state));
  if (targets.length === 0) {
    if (isFinal(job.state)) throw new ConflictError(`job ${job._id} is already ${job.state}`);
    return [];
  }
  const now = new Date();
  const leased = targets.filter((j) => isActive(j.state));
  const free = targets.filter((j) => !isActive(j.state));
  const lost = await recordTransitions(
    ctx.store,
    free.map((j) => ({ id: j._id, from: j.state, path: [{ state: "USER_KILLED" as const, message: "killed by user" }], set: { lock: null } })),
  );
  const queued = free.filter((j) => isRunnable(j.state) && !lost.includes(j._id));
  await dropEntries(ctx, queued.map(queueItem));
  // A launcher may be running a queued job already, ahead of its claim (DESIGN §7): it stops the process on this.
  for (const j of queued) await ctx.queues.publish(KILL_CHANNEL, j._id);
  if (leased.length) {
    // Marked so a lease that lapses (dead launcher) ends in USER_KILLED, not a restart.
    await markKillRequested(ctx.store, leased.map((j) => j._id), now);
    for (const j of leased) await ctx.queues.publish(KILL_CHANNEL, j._id);
  }
  const killed = targets.map((j) => j._id).filter((id) => !lost.includes(id));
  await releaseChildren(ctx, killed);
  return killed;
}
