import { isActive, isFinal, isRunnable, type Job, type JobState } from "../models/index.js";
import { ConflictError } from "../errors/index.js";
import { descendantsOf, getJob, markHasChildren, setJobFieldsIf, statesOf, transitionJob, serverTime, type Store } from "../store/index.js";
import { settleWaiting } from "./release.js";
import type { JobsContext } from "./context.js";
import { dropEntries, queueItem } from "./queue-item.js";
import { leaseHeld, leaseLive } from "./lease.js";

/** What changing a job's parents works on. */
type ParentsContext = JobsContext;

/**
 * Adds PARENT → CHILD (`balsam dep`, 0.x's `dag.add_dependency`), refusing
 * duplicates, cycles, and children that have started or ended.
 */
export async function addDependency(ctx: ParentsContext, parentRef: string, childRef: string): Promise<{ parent: Job; child: Job }> {
  const parent = await getJob(ctx.store, parentRef);
  const child = await getJob(ctx.store, childRef);
  if (parent._id === child._id) throw new ConflictError("a job cannot depend on itself");
  if (child.parents.includes(parent._id)) throw new ConflictError(`${child._id} already depends on ${parent._id}`);
  if (await dependsOn(ctx.store, [parent._id], child._id)) {
    throw new ConflictError(`adding ${parent._id} → ${child._id} would make a cycle`, { hint: `${parent._id} already depends on ${child._id}` });
  }
  if (isFinal(child.state) || isActive(child.state)) {
    throw new ConflictError(`job ${child._id} is ${child.state}; only jobs that have not started can get a parent`);
  }
  const updated = await replaceParents(ctx, child, [...child.parents, parent._id], { waiting: `waiting on parent ${parent._id}`, ready: `parent ${parent._id} added: all finished` });
  return { parent, child: updated };
}

/**
 * Replaces a job's parents, as 0.x's `job.set_parents(parents)` (ids or
 * unique prefixes; an empty list leaves it none). Unknown ids, the job
 * itself and cycles are refused, changing nothing.
 *
 * A job that has not started is re-evaluated as a new dependency does it: it
 * waits (AWAITING_PARENTS, out of its queue) while a parent has not
 * finished, becomes READY and is queued when all have — or when it has none
 * — and fails when one failed or was killed, as 0.x's parent check did. A
 * final job keeps its state (0.x only saved the field; a rerun waits for the
 * new parents). A job a launcher is running is refused, unless the caller is
 * that job's own process holding its lease (DESIGN invariant 3); it keeps
 * its state.
 */
export async function setParents(ctx: ParentsContext, childRef: string, parentRefs: readonly string[], opts: { lease?: string } = {}): Promise<Job> {
  const child = await getJob(ctx.store, childRef);
  const parents: Job[] = [];
  for (const ref of parentRefs) {
    const p = await getJob(ctx.store, ref);
    if (p._id === child._id) throw new ConflictError(`job ${child._id} cannot be its own parent`);
    if (!parents.some((q) => q._id === p._id)) parents.push(p);
  }
  const held = leaseLive(child, await serverTime(ctx.store));
  const lease = held ? leaseHeld(child, opts.lease) : undefined;
  if (held && lease === undefined) {
    throw new ConflictError(`job ${child._id} is ${child.state}, held by launcher ${child.lock!.owner}: its parents can be set before it starts or once it ends`, {
      hint: "kill it with `balsam killjob`, or wait for it to finish",
    });
  }
  const loop = await dependsOn(ctx.store, parents.map((p) => p._id), child._id);
  if (loop) throw new ConflictError(`making ${loop} a parent of ${child._id} would make a cycle`, { hint: `${loop} already depends on ${child._id}` });
  const set = parents.length ? `parents set to ${parents.map((p) => p._id.slice(0, 8)).join(", ")}` : "parents set to none";
  return replaceParents(ctx, child, parents.map((p) => p._id), { waiting: `${set}: waiting`, ready: parents.length ? `${set}: all finished` : set }, lease);
}

/** The first of `ids` that depends on `child`, directly or not: making it a parent of `child` would make a cycle. */
async function dependsOn(store: Store, ids: readonly string[], child: string): Promise<string | undefined> {
  if (ids.length === 0) return undefined;
  const below = new Set((await descendantsOf(store, [child])).map((j) => j._id));
  return ids.find((id) => below.has(id));
}

/**
 * Writes `ids` as the child's whole parent list, moving a job that has not
 * started as its new parents say (`say`: the history line for each way);
 * the caller has checked that the child may change and that no cycle is
 * made. Parents are marked as having children first, so one that finishes
 * meanwhile looks for this child; a waiting child is then settled by its
 * parents' states read after the write, so one that finished between the
 * read and the write cannot leave it waiting forever.
 */
async function replaceParents(ctx: ParentsContext, child: Job, ids: readonly string[], say: { waiting: string; ready: string }, lease?: string): Promise<Job> {
  const parents = await statesOf(ctx.store, ids);
  const waits = child.waitForParents && (parents.size < new Set(ids).size || [...parents.values()].some((s) => s !== "JOB_FINISHED"));
  let to: JobState | undefined;
  if (child.state === "CREATED" || child.state === "AWAITING_PARENTS") to = waits ? "AWAITING_PARENTS" : "READY";
  else if (isRunnable(child.state) && waits) to = "AWAITING_PARENTS";
  if (to === child.state) to = undefined;
  const now = new Date();
  // A new version too: a launcher running a queued parent from its entry's snapshot (which says no children) then re-reads it before recording it finished.
  await markHasChildren(ctx.store, ids, now);
  let written: boolean;
  if (to) {
    written = await transitionJob(ctx.store, { id: child._id, from: child.state, path: [{ state: to, message: to === "READY" ? say.ready : say.waiting }], set: { parents: [...ids] }, at: now });
  } else {
    written = await setJobFieldsIf(ctx.store, { id: child._id, state: child.state, leaseOwner: lease || undefined }, { parents: [...ids] }, now);
  }
  if (!written) throw new ConflictError(`job ${child._id} changed state while its parents were set; try again`);
  let updated = await getJob(ctx.store, child._id);
  // Its queue entry carries its parents (launch snapshot): replaced, or removed while it waits.
  if (isRunnable(child.state)) await dropEntries(ctx, [queueItem(child)]);
  if (isRunnable(updated.state)) await ctx.queues.enqueue([queueItem(updated)]);
  if (updated.state === "AWAITING_PARENTS" && (await settleWaiting(ctx, [updated]))) updated = await getJob(ctx.store, child._id);
  return updated;
}
