import type { Filter } from "mongodb";
import type { Job, JobState } from "../models/index.js";
import type { Store } from "./connection.js";
import { coll } from "./collections.js";
import { chunked, MAX_IN_IDS } from "./bulk.js";
import { ensureTagIndexes } from "./tag-indexes.js";

/*
 * Named writes of the jobs collection other than state transitions
 * (transitions.ts) and leases (leases.ts). Each says its filter, the index
 * it uses, and the conformance test guarding what it needs of the server.
 */

/**
 * Marks `ids` as having children, with a new version: a launcher running a
 * queued parent from its entry's snapshot (which says no children) then
 * re-reads it before recording it finished, and releases the new child.
 * Filter `{_id: {$in}, hasChildren: false}`; index `_id`.
 * Guard: "updateMany with _id $in and a state condition is atomic per document and counts right".
 */
export async function markHasChildren(store: Store, ids: readonly string[], now = new Date()): Promise<void> {
  for (const chunk of chunked([...new Set(ids)], MAX_IN_IDS)) {
    await coll(store).jobs.updateMany({ _id: { $in: chunk }, hasChildren: false }, { $set: { hasChildren: true, updatedAt: now } });
  }
}

/**
 * Sets plain fields of one job if it is still in `state` (and, given
 * `leaseOwner`, leased by it); true when it was. Filter `{_id, state, "lock.owner"?}`; index `_id`.
 * A new `tags` gets its keys' indexes first (tag-indexes.ts).
 * Guard: "a conditional updateOne is atomic: 4 clients racing over N documents win exactly N times (3 rounds)".
 */
export async function setJobFieldsIf(store: Store, cond: { id: string; state: JobState; leaseOwner?: string }, set: Partial<Job> | Record<string, unknown>, now = new Date()): Promise<boolean> {
  const filter: Filter<Job> = { _id: cond.id, state: cond.state };
  if (cond.leaseOwner !== undefined) filter["lock.owner"] = cond.leaseOwner;
  await tagIndexesFor(store, set);
  return (await coll(store).jobs.updateOne(filter, { $set: { ...set, updatedAt: now } })).matchedCount === 1;
}

/**
 * Sets plain fields on every job a query (from jobFilterQuery) matches;
 * returns how many changed. Index as the query's.
 * A new `tags` gets its keys' indexes first (tag-indexes.ts).
 * Guard: "updateMany with _id $in and a state condition is atomic per document and counts right".
 */
export async function setJobFieldsWhere(store: Store, query: Filter<Job>, set: Partial<Job> | Record<string, unknown>): Promise<number> {
  await tagIndexesFor(store, set);
  return (await coll(store).jobs.updateMany(query, { $set: { ...set, updatedAt: new Date() } })).modifiedCount;
}

/** New tags written as a whole get their keys' indexes first, as an insert's do (tag-indexes.ts). */
async function tagIndexesFor(store: Store, set: Partial<Job> | Record<string, unknown>): Promise<void> {
  const tags = (set as Partial<Job>).tags;
  if (tags) await ensureTagIndexes(store, [tags]);
}

/**
 * Marks leased jobs whose kill was asked for, so a lease that lapses (a dead
 * launcher) ends them USER_KILLED, not restarted. Filter `{_id: {$in}}`; index `_id`.
 * Guard: "updateMany with _id $in and a state condition is atomic per document and counts right".
 */
export async function markKillRequested(store: Store, ids: readonly string[], now: Date): Promise<void> {
  for (const chunk of chunked([...ids], MAX_IN_IDS)) await coll(store).jobs.updateMany({ _id: { $in: chunk } }, { $set: { killRequestedAt: now } });
}
