import type { AnyBulkWriteOperation, Filter, UpdateFilter } from "mongodb";
import { canTransitionPath, type Job, type JobState, type StateHistoryEntry } from "../models/index.js";
import { InvalidTransitionError } from "../errors/index.js";
import { allowedTransitions } from "../models/index.js";
import type { Store } from "./connection.js";

/**
 * One compare-and-set state change: the job must be in `from` (and, when
 * given, leased by `owner`); it moves through `path` — several states at once
 * when steps are fast-forwarded — with every step appended to its history in
 * the same write.
 */
export interface Transition {
  id: string;
  from: JobState | readonly JobState[];
  /** Lease owner the job must have; `null` means the job must have no lease. */
  owner?: string | null;
  path: ReadonlyArray<{ state: JobState; message?: string }>;
  /** Other fields written in the same update. */
  set?: Partial<Job>;
  /** Fields removed in the same update. */
  unset?: Array<keyof Job>;
  inc?: Partial<Record<"attempts", number>>;
}

function check(t: Transition): void {
  const froms = Array.isArray(t.from) ? t.from : [t.from as JobState];
  const states = t.path.map((p) => p.state);
  for (const f of froms) {
    if (!canTransitionPath(f, states)) {
      const first = states[0] ?? f;
      throw new InvalidTransitionError(f, states.join(" → "), f === first ? [] : allowedTransitions(f));
    }
  }
}

export function transitionOp(t: Transition, now = new Date()): { filter: Filter<Job>; update: UpdateFilter<Job> } {
  check(t);
  const froms = Array.isArray(t.from) ? t.from : [t.from as JobState];
  const filter: Record<string, unknown> = { _id: t.id, state: froms.length === 1 ? froms[0] : { $in: froms } };
  if (t.owner !== undefined) filter["lock.owner"] = t.owner;
  const last = t.path[t.path.length - 1];
  if (!last) throw new Error("a transition needs at least one state");
  const entries: StateHistoryEntry[] = t.path.map((p) => ({ at: now, state: p.state, message: p.message ?? "" }));
  const update: Record<string, unknown> = {
    $set: { ...(t.set ?? {}), state: last.state, updatedAt: now },
    $push: { stateHistory: { $each: entries } },
  };
  if (t.unset?.length) update.$unset = Object.fromEntries(t.unset.map((k) => [k, ""]));
  if (t.inc) update.$inc = t.inc;
  return { filter: filter as Filter<Job>, update: update as UpdateFilter<Job> };
}

/** Applies one transition; false when the job was not in the expected state/owner (a lost race). */
export async function transitionJob(store: Store, t: Transition): Promise<boolean> {
  const { filter, update } = transitionOp(t);
  const res = await store.jobs.updateOne(filter, update);
  return res.matchedCount === 1;
}

/**
 * Applies many transitions in one unordered bulkWrite. Returns the ids whose
 * condition did not match (lost races), found by reading back the states of
 * the ids only when the matched count says some failed.
 */
export async function recordTransitions(store: Store, ts: Transition[]): Promise<string[]> {
  if (ts.length === 0) return [];
  const now = new Date();
  const ops: AnyBulkWriteOperation<Job>[] = ts.map((t) => {
    const { filter, update } = transitionOp(t, now);
    return { updateOne: { filter, update } };
  });
  const res = await store.jobs.bulkWrite(ops, { ordered: false });
  if (res.matchedCount === ts.length) return [];
  const docs = await store.jobs
    .find({ _id: { $in: ts.map((t) => t.id) } }, { projection: { state: 1, updatedAt: 1 } })
    .toArray();
  const byId = new Map(docs.map((d) => [d._id, d]));
  return ts
    .filter((t) => {
      const d = byId.get(t.id);
      const want = t.path[t.path.length - 1]?.state;
      return !d || d.state !== want || d.updatedAt.getTime() !== now.getTime();
    })
    .map((t) => t.id);
}
