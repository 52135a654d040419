import type { Job } from "../models/index.js";
import { childrenIn, recordTransitions, statesOf, type Transition } from "../store/index.js";
import { queueItem } from "./queue-item.js";
import type { JobsContext } from "./context.js";

/**
 * Releases the children of finished jobs: a child whose parents have all
 * finished becomes READY and is enqueued; a child of a FAILED or killed
 * parent becomes FAILED. Returns how many children moved.
 */
export async function releaseChildren(ctx: JobsContext, parentIds: readonly string[]): Promise<number> {
  if (parentIds.length === 0) return 0;
  return settleWaiting(ctx, await childrenIn(ctx.store, parentIds, "AWAITING_PARENTS"));
}

/**
 * Moves AWAITING_PARENTS jobs on by their parents' states as they are now
 * read: READY (and enqueued) when all finished, FAILED — and their own
 * children in turn — when one failed, was killed or is gone; the others
 * stay. Returns how many moved.
 */
export async function settleWaiting(ctx: JobsContext, kids: readonly Job[]): Promise<number> {
  if (kids.length === 0) return 0;
  const allParents = [...new Set(kids.flatMap((k) => k.parents))];
  const stateOf = await statesOf(ctx.store, allParents);
  const ts: Transition[] = [];
  const ready: Job[] = [];
  const failed: string[] = [];
  for (const k of kids) {
    const bad = k.parents.find((p) => {
      const s = stateOf.get(p);
      return s === undefined || s === "FAILED" || s === "USER_KILLED";
    });
    if (bad) {
      const s = stateOf.get(bad) ?? "deleted";
      ts.push({ id: k._id, from: "AWAITING_PARENTS", path: [{ state: "FAILED", message: `parent ${bad} is ${s}` }], set: { failedByParent: bad } });
      failed.push(k._id);
    } else if (k.parents.every((p) => stateOf.get(p) === "JOB_FINISHED")) {
      ts.push({ id: k._id, from: "AWAITING_PARENTS", path: [{ state: "READY", message: "parents finished" }] });
      ready.push(k);
    }
  }
  const at = new Date();
  const lost = new Set(await recordTransitions(ctx.store, ts, at));
  await ctx.queues.enqueue(ready.filter((k) => !lost.has(k._id)).map((k) => queueItem({ ...k, state: "READY", updatedAt: at })));
  const nowFailed = failed.filter((id) => !lost.has(id));
  // A failed child fails its own children in turn.
  const deeper = nowFailed.length ? await releaseChildren(ctx, nowFailed) : 0;
  return ts.length - lost.size + deeper;
}

/** FAILED descendants that failed only because one of `parentIds` did: back to AWAITING_PARENTS. */
export async function rearmChildren(ctx: JobsContext, parentIds: readonly string[]): Promise<string[]> {
  const rearmed: string[] = [];
  let frontier = new Set(parentIds);
  while (frontier.size) {
    const failed = await childrenIn(ctx.store, [...frontier], "FAILED", ["failedByParent", "stateHistory"]);
    const kids = failed.filter((k) => frontier.has(failureCause(k) ?? ""));
    const ts: Transition[] = kids.map((k) => ({
      id: k._id,
      from: "FAILED",
      path: [{ state: "AWAITING_PARENTS", message: `re-armed: parent ${failureCause(k)} is rerun` }],
      unset: ["failedByParent"],
    }));
    const lost = new Set(await recordTransitions(ctx.store, ts));
    const done = kids.map((k) => k._id).filter((id) => !lost.has(id));
    rearmed.push(...done);
    frontier = new Set(done);
  }
  return rearmed;
}

/**
 * The parent whose failure failed this job: the field written since reruns
 * exist, else the history line `releaseChildren` always wrote.
 */
function failureCause(j: Pick<Job, "failedByParent" | "stateHistory">): string | undefined {
  if (j.failedByParent) return j.failedByParent;
  const last = j.stateHistory.at(-1);
  return last?.state === "FAILED" ? /^parent (\S+) is /.exec(last.message)?.[1] : undefined;
}
