import { allowedTransitions, canTransition, checkNoNaN, isFinal, isRunnable, RERUN_REQUESTS, transitionPath, type Job, type JobSpec, type JobState, isLaunchField } from "../models/index.js";
import { ConflictError, InvalidTransitionError, NotFoundError, UsageError } from "../errors/index.js";
import { chunked, findApp, getJob, jobFilterQuery, MAX_IN_IDS, setJobFieldsIf, transitionJob, type JobFilter, type Transition, resolveJobFilter, runnableMatching, setJobFieldsWhere, serverTime } from "../store/index.js";
import { dropEntries, queueItem } from "./queue-item.js";
import { leaseHeld, leaseLive } from "./lease.js";
import { announceFinished } from "./finished.js";
import { releaseChildren } from "./release.js";
import { rerun } from "./rerun.js";
import type { JobsContext } from "./context.js";
import { validateSpec } from "./add.js";

/**
 * Sets plain fields of one job, validated as `add` validates them. The
 * state goes through setState, and a job under a live launcher lease is
 * refused: the launcher is its only writer (DESIGN invariant 3).
 */
export async function modify(ctx: JobsContext, idOrPrefix: string, set: Partial<Omit<Job, "_id" | "state" | "stateHistory" | "workflow" | "chunk">>, opts: { lease?: string } = {}): Promise<Job> {
  // `chunk` names the queue entry that offers the job (libs/client/add.ts): only adding it sets one.
  for (const k of ["_id", "state", "stateHistory", "workflow", "chunk"]) {
    if (k in set) throw new UsageError(`modify() does not change ${k}${k === "state" ? "; use jobs.setState(id, state)" : ""}`);
  }
  const job = await getJob(ctx.store, idOrPrefix);
  // The job's own scripts hold its launcher's lease (see setState) and may edit it, as 0.x's `job.save()`.
  const lease = leaseHeld(job, opts.lease);
  const ownProcess = lease !== undefined;
  if (!ownProcess && leaseLive(job, await serverTime(ctx.store))) {
    throw new ConflictError(`job ${job._id} is held by launcher ${job.lock!.owner}`, { hint: "kill it with `balsam killjob`, or wait for it to finish" });
  }
  if (set.application !== undefined && set.application !== job.application) {
    if (!(await findApp(ctx.store, set.application))) {
      throw new NotFoundError(`no app named '${set.application}'`, { hint: "`balsam ls apps` lists them" });
    }
  }
  validateSpec({ ...job, ...set } as JobSpec, ctx.limits);
  checkNoNaN(set);
  // Conditioned on the state read above, so a launcher claiming the job meanwhile wins.
  if (!(await setJobFieldsIf(ctx.store, { id: job._id, state: job.state, leaseOwner: ownProcess ? lease : undefined }, set))) throw new ConflictError(`job ${job._id} changed state while being modified; try again`);
  const updated = await getJob(ctx.store, job._id);
  if (isRunnable(updated.state)) {
    // Its queue entry carries the job as it was (launch snapshot): replaced, so a
    // launcher runs the new version. One already taken is caught by the launcher's
    // write, conditioned on the old version, and run again as it now is.
    await ctx.queues.remove([queueItem(job)]);
    await ctx.queues.enqueue([queueItem(updated)]);
  }
  return updated;
}

/**
 * Moves a job to `to` if the transition table allows it, recording it in
 * the history; READY/RESTART_READY enqueue it. A job under a launcher's
 * lease is refused (the launcher is its only writer) except for kills —
 * and except for the job's own processes (DESIGN invariant 3): the
 * launcher hands them its lease (`BALSAM_JOB_LEASE`, or `opts.lease`), and
 * with it they may set any state, as 0.x scripts did, through the steps of
 * the table; the lease is dropped and the launcher leaves the job be.
 */
export async function setState(ctx: JobsContext, idOrPrefix: string, to: JobState, message = "set by user", opts: { lease?: string } = {}): Promise<Job> {
  const job = await getJob(ctx.store, idOrPrefix);
  const lease = leaseHeld(job, opts.lease);
  const held = leaseLive(job, await serverTime(ctx.store));
  const ownProcess = held && lease !== undefined;
  if (isFinal(job.state) && RERUN_REQUESTS.includes(to)) {
    await rerun(ctx, job._id, { restart: to === "RESTART_READY", message: `${message} (${to})` });
    return getJob(ctx.store, job._id);
  }
  const path = ownProcess ? transitionPath(job.state, to) : canTransition(job.state, to) ? [to] : undefined;
  if (!path) throw new InvalidTransitionError(job.state, to, allowedTransitions(job.state));
  if (held && !ownProcess) {
    throw new ConflictError(`job ${job._id} is held by launcher ${job.lock!.owner}`, { hint: "kill it with `balsam killjob`, or wait for it to finish" });
  }
  const t: Transition = { id: job._id, from: job.state, path: path.map((state) => ({ state, message: state === to ? message : "" })) };
  if (ownProcess) {
    t.owner = lease;
    t.set = { lock: null };
  }
  if (to === "RESTART_READY") t.inc = { attempts: 1 };
  if (!(await transitionJob(ctx.store, t))) throw new ConflictError(`job ${job._id} changed state while being modified; try again`);
  const updated = await getJob(ctx.store, job._id);
  if (isRunnable(to)) await ctx.queues.enqueue([queueItem(updated)]);
  if (isRunnable(job.state)) await dropEntries(ctx, [queueItem(job)]);
  if (isFinal(to)) {
    // Told as a launcher tells it: a search waiting on results() hears of it, and children move on.
    await announceFinished(ctx.queues, [{ id: updated._id, workflow: updated.workflow, name: updated.name, state: to, result: updated.data?.result }]);
    if (updated.hasChildren) await releaseChildren(ctx, [updated._id]);
  }
  return updated;
}

/**
 * Sets plain fields (not `state`: use setState) on every job `filter`
 * matches; returns how many changed. Unlike `modify` it does not check
 * leases: for fields a launcher does not write (description, data.*).
 */
export async function updateWhere(ctx: JobsContext, filter: JobFilter, set: Partial<Omit<Job, "_id" | "state" | "stateHistory">>): Promise<number> {
  if ("state" in set) throw new UsageError("update() does not change states; use jobs.setState(id, state)");
  if ("chunk" in set) throw new UsageError("update() does not change chunk: only adding a job sets the queue entry that offers it");
  checkNoNaN(set);
  const f = await resolveJobFilter(ctx.store, filter);
  if (!f) return 0;
  const query = jobFilterQuery(f);
  const modified = await setJobFieldsWhere(ctx.store, query, set);
  if (modified > 0 && Object.keys(set).some((k) => isLaunchField(k.split(".")[0]!))) {
    // Queued jobs' entries carry them as they were (launch snapshots): replaced,
    // as jobs.modify does, so launchers run them as they now are.
    // The selection's own state, if any, stands; otherwise only runnable jobs are read.
    const queued = (await runnableMatching(ctx.store, query)).filter((j) => isRunnable(j.state));
    for (const chunk of chunked(queued, MAX_IN_IDS)) {
      await ctx.queues.remove(chunk.map(queueItem));
      await ctx.queues.enqueue(chunk.map(queueItem));
    }
  }
  return modified;
}
