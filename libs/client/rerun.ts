import { FINAL_STATES, isFinal, type Job, type JobState } from "../models/index.js";
import { ConflictError, UsageError } from "../errors/index.js";
import { chunked, findJobs, getJob, jobFilterQuery, MAX_BULK_OPS, recordTransitions, statesOf, type JobFilter, type Transition } from "../store/index.js";
import { queueItem } from "./queue-item.js";
import { releaseChildren, rearmChildren } from "./release.js";
import type { JobsContext, ProgressOptions } from "./context.js";

/**
 * Runs final jobs again (Balsam 0.x: `balsam modify ID state CREATED`):
 * one job by id or unique prefix — refused with the reason when it cannot
 * be rerun — or every FAILED, USER_KILLED or JOB_FINISHED job a filter
 * matches, skipping (with the reason) those that cannot.
 *
 * Each goes back to READY (RESTART_READY with `restart`), or to
 * AWAITING_PARENTS while one of its parents has not finished or is rerun
 * with it; its history is kept and gains the step, its attempt count goes
 * up (so its queue entry is new) and its last run's lease, exit code and
 * kill request are cleared. A job whose parent is FAILED, USER_KILLED or
 * deleted and not rerun with it is not rerun: it would fail again at once.
 *
 * Children failed *because of* a rerun job (`failedByParent`, written when
 * a parent's failure or kill failed them; they never ran) are re-armed:
 * FAILED → AWAITING_PARENTS, transitively, so they run when the rerun
 * job finishes. Parents are written before their children and queue
 * entries are added last, so no launcher can finish a rerun job before
 * its children wait for it; a release pass at the end covers the rest.
 */
export async function rerun(ctx: JobsContext, target: string | JobFilter, opts: ProgressOptions & { restart?: boolean; message?: string } = {}): Promise<RerunResult> {
  const fields = { _id: 1, name: 1, state: 1, parents: 1, workflow: 1, attempts: 1, numNodes: 1 } as const;
  let jobs: Job[];
  if (typeof target === "string") {
    const job = await getJob(ctx.store, target);
    if (!isFinal(job.state)) {
      throw new ConflictError(`job ${job._id} is ${job.state}; only FAILED, USER_KILLED or JOB_FINISHED jobs can be rerun`);
    }
    jobs = [job];
  } else {
    if (Object.keys(jobFilterQuery(target)).length === 0) throw new UsageError("rerun needs a selector (name, id, workflow or state)");
    const states = target.state === undefined ? [...FINAL_STATES] : [target.state].flat();
    const notFinal = states.find((st) => !isFinal(st));
    if (notFinal) throw new UsageError(`only FAILED, USER_KILLED or JOB_FINISHED jobs can be rerun, not ${notFinal}`);
    jobs = await findJobs(ctx.store, { ...target, state: states }, { projection: fields });
  }
  const message = opts.message ?? "rerun by user";
  const chosen = new Set(jobs.map((j) => j._id));
  const outside = [...new Set(jobs.flatMap((j) => j.parents))].filter((p) => !chosen.has(p));
  const stateOf = await statesOf(ctx.store, outside);
  const skipped: Array<{ id: string; reason: string }> = [];
  // A job skipped stays final, so its children in the selection are skipped in turn.
  for (let again = true; again; ) {
    again = false;
    for (const j of jobs) {
      if (!chosen.has(j._id)) continue;
      const bad = j.parents.find((p) => !chosen.has(p) && ["FAILED", "USER_KILLED", undefined].includes(stateOf.get(p)));
      if (!bad) continue;
      skipped.push({ id: j._id, reason: `parent ${bad} is ${stateOf.get(bad) ?? "deleted"}; rerun it too` });
      chosen.delete(j._id);
      stateOf.set(j._id, j.state);
      again = true;
    }
  }
  const ts: Transition[] = [];
  const runnable: Job[] = [];
  for (const j of jobs) {
    if (!chosen.has(j._id)) continue;
    const waits = j.parents.some((p) => chosen.has(p) || stateOf.get(p) !== "JOB_FINISHED");
    const to: JobState = waits ? "AWAITING_PARENTS" : opts.restart ? "RESTART_READY" : "READY";
    ts.push({
      id: j._id,
      from: j.state,
      path: [{ state: to, message: `${message}: attempt ${j.attempts + 2}${waits ? ", waiting on its parents" : ""}` }],
      set: { lock: null, exitCode: null, runtimeSeconds: null },
      unset: ["killRequestedAt", "failedByParent"],
      inc: { attempts: 1 },
    });
    if (!waits) runnable.push({ ...j, attempts: j.attempts + 1 });
  }
  if (typeof target === "string" && skipped[0]) throw new ConflictError(`job ${target} cannot be rerun: ${skipped[0].reason}`);
  const rerun: string[] = [];
  const rearmed: string[] = [];
  const enqueue = new Map(runnable.map((j) => [j._id, j]));
  // Parents before their children, then chunk by chunk with a stop heeded
  // between chunks: a job's transition and its queue entry go together, and
  // a stop never leaves a child waiting on a parent that was not rerun.
  const depth = new Map<string, number>();
  const byId = new Map(jobs.map((j) => [j._id, j]));
  // Iterative, so a chain of 100k jobs cannot overflow the stack.
  const depthOf = (root: string): number => {
    const stack = [root];
    while (stack.length) {
      const id = stack[stack.length - 1] as string;
      const ups = (byId.get(id)?.parents ?? []).filter((p) => chosen.has(p));
      const todo = ups.filter((p) => !depth.has(p));
      if (todo.length && depth.get(id) !== -1) {
        depth.set(id, -1); // being computed: a cycle (which addDependency refuses) ends here
        stack.push(...todo);
        continue;
      }
      stack.pop();
      depth.set(id, 1 + Math.max(0, ...ups.map((p) => depth.get(p) ?? 0)));
    }
    return depth.get(root) ?? 0;
  };
  ts.sort((x, y) => depthOf(x.id) - depthOf(y.id));
  for (const chunk of chunked(ts, MAX_BULK_OPS)) {
    if (opts.signal?.aborted) break;
    const lost = new Set(await recordTransitions(ctx.store, chunk));
    for (const id of lost) skipped.push({ id, reason: "changed state meanwhile" });
    const written = chunk.map((t) => t.id).filter((id) => !lost.has(id));
    rearmed.push(...(await rearmChildren(ctx, written)));
    await ctx.queues.enqueue(written.flatMap((id) => enqueue.get(id) ?? []).map(queueItem));
    // A rerun job that finished before its children were re-armed releases them now.
    await releaseChildren(ctx, written);
    rerun.push(...written);
    opts.onProgress?.(rerun.length, ts.length);
  }
  return { rerun, rearmed, skipped, interrupted: rerun.length + skipped.length < jobs.length };
}

/** What `jobs.rerun` did: the jobs rerun, the children re-armed, and those left as they were, with why. */
export interface RerunResult {
  /** Stopped by `signal` before every chosen job was rerun; the others are untouched. */
  interrupted: boolean;
  rerun: string[];
  rearmed: string[];
  skipped: Array<{ id: string; reason: string }>;
}
