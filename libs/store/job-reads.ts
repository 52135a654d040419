import type { Filter, FindCursor } from "mongodb";
import { ACTIVE_STATES, FINAL_STATES, RUNNABLE_STATES, WAITING_STATES, tagsQuery, type Job, type JobState, type Tags } from "../models/index.js";
import type { Store } from "./connection.js";
import { coll } from "./collections.js";
import { chunked, MAX_IN_IDS } from "./bulk.js";

/*
 * Named reads of the jobs collection. Each says its filter, the index it
 * uses (DESIGN §3), and the conformance test (test/conformance/
 * mongo-wire.conformance.test.ts unless said) that guards the server
 * behaviour it relies on.
 */

/**
 * One job by id, or null. Filter `{_id}`; index `_id`.
 * Guard: none needed (a point lookup every server answers).
 */
export function readJob(store: Store, id: string): Promise<Job | null> {
  return coll(store).jobs.findOne({ _id: id });
}

/**
 * Some fields of the jobs among `ids` that exist, in chunks of MAX_IN_IDS.
 * Filter `{_id: {$in}}`; index `_id`.
 * Guard: "find with _id $in is answered through the _id index (explain)";
 * "an inclusion projection of top-level fields keeps the document's order…".
 */
export async function jobFields<K extends keyof Job>(store: Store, ids: readonly string[], fields: readonly K[]): Promise<Array<Pick<Job, "_id" | K>>> {
  const out: Array<Pick<Job, "_id" | K>> = [];
  const projection = Object.fromEntries(fields.map((f) => [f, 1]));
  for (const chunk of chunked([...new Set(ids)], MAX_IN_IDS)) out.push(...(await coll(store).jobs.find({ _id: { $in: chunk } }, { projection }).toArray()));
  return out;
}

/**
 * The runnable jobs among `ids` at attempt 0 that were added in `chunk`,
 * whole, in the order of `ids`: a chunk entry's jobs as they are now (a
 * launcher starts them from this, in the order they were added).
 * Filter `{_id: {$in}, state: {$in: RUNNABLE}, chunk, attempts: 0}`; index `_id`.
 * Guard: "find with _id $in and another condition is answered through the _id index (explain)".
 */
export async function runnableOfChunk(store: Store, chunk: string, ids: readonly string[]): Promise<Job[]> {
  const found = await coll(store).jobs.find({ _id: { $in: [...ids] }, state: { $in: [...RUNNABLE_STATES] }, chunk, attempts: 0 }).toArray();
  // In the server's own order, not the list's: a chunk's jobs start in the order they were added.
  const at = new Map(ids.map((id, i) => [id, i]));
  return found.sort((a, b) => at.get(a._id)! - at.get(b._id)!);
}

/** The states of the jobs among `ids` that exist (see jobFields). */
export async function statesOf(store: Store, ids: readonly string[]): Promise<Map<string, JobState>> {
  return new Map((await jobFields(store, ids, ["state"])).map((j) => [j._id, j.state]));
}

/**
 * Which of `ids` are final (for a results() waiter: name, workflow, state,
 * data). Filter `{_id: {$in}, state: {$in: FINAL}}`; index `_id`.
 * Guard: "find with _id $in and another condition is answered through the _id index (explain)".
 */
export function finalAmong(store: Store, ids: readonly string[]): Promise<Array<Pick<Job, "_id" | "name" | "workflow" | "state" | "data">>> {
  return coll(store).jobs.find({ _id: { $in: [...ids] }, state: { $in: [...FINAL_STATES] } }, { projection: { name: 1, workflow: 1, state: 1, data: 1 } }).toArray();
}

/**
 * Of `ids`, those whose lease `owner` holds. Filter `{_id: {$in}, "lock.owner"}`;
 * index `_id`. Guard: "find with _id $in and another condition is answered through the _id index (explain)".
 */
export async function leasedBy(store: Store, owner: string, ids: readonly string[]): Promise<string[]> {
  const docs = await coll(store).jobs.find({ _id: { $in: [...ids] }, "lock.owner": owner }, { projection: { _id: 1 } }).toArray();
  return docs.map((d) => d._id);
}

/** The workflow part of a filter: all workflows when undefined. */
function inWorkflows(workflows: readonly string[] | undefined): Filter<Job> {
  return workflows ? { workflow: { $in: [...workflows] } } : {};
}

/** A launcher's selection: its workflows (all when undefined) and the tags its jobs carry (`tags.K: V` each; the `tag_K` indexes). */
function inSelection(workflows: readonly string[] | undefined, tags: Tags | undefined): Filter<Job> {
  return { ...inWorkflows(workflows), ...tagsQuery(tags) };
}

/**
 * The condition "the job's GPUs fit a node of `maxGpus`": gpus_per_rank ×
 * ranks_per_node ≤ maxGpus, spelled as one clause per GPU count since
 * FerretDB 1.x cannot multiply two fields (`$expr`). A job from before the
 * field existed needs none.
 */
export function gpuFitFilter(maxGpus: number): Filter<Job> {
  const clauses: Array<Filter<Job>> = [{ gpusPerRank: { $exists: false } }, { gpusPerRank: { $lte: 0 } }];
  for (let g = 1; g <= maxGpus; g++) clauses.push({ gpusPerRank: g, ranksPerNode: { $lte: Math.floor(maxGpus / g) } });
  return { $or: clauses };
}

async function exists(store: Store, filter: Filter<Job>): Promise<boolean> {
  // Existence, not counts: a scan stops at the first match.
  return (await coll(store).jobs.findOne(filter, { projection: { _id: 1 } })) !== null;
}

/**
 * Whether a runnable job exists (of `workflows`, carrying `tags`) that a
 * launcher with this much time, these nodes and `maxGpus` GPUs a node could
 * run. Filter `{workflow?, "tags.K"?, state: {$in: RUNNABLE}, wallTimeMinutes: {$lte}, numNodes: {$lte}, ranksPerNode?, $or: gpuFitFilter}`;
 * index `{workflow, state}` or `{state}` (or a `tag_K`).
 * Guard: "find by workflow and state $in is answered through an index and matches arrays too (explain)";
 * with tags, "find by a tag (a field of a sub-document, "tags.k") is answered through its index and matches arrays too (explain)".
 * The GPU clause (`$or` of equalities and ranges) has no conformance test of its own yet.
 */
export function anyRunnableFitting(store: Store, f: { workflows?: readonly string[]; tags?: Tags; minutesLeft: number; maxNodes: number; maxGpus: number; serial: boolean }): Promise<boolean> {
  const fit: Filter<Job> = { ...inSelection(f.workflows, f.tags), state: { $in: [...RUNNABLE_STATES] }, numNodes: { $lte: f.serial ? 1 : f.maxNodes }, ...gpuFitFilter(f.maxGpus) };
  if (Number.isFinite(f.minutesLeft)) fit.wallTimeMinutes = { $lte: f.minutesLeft };
  if (f.serial) fit.ranksPerNode = { $lte: 1 };
  return exists(store, fit);
}

/** Whether a job of these workflows (carrying `tags`) is being worked on (ACTIVE_STATES). Index and guard as anyRunnableFitting. */
export function anyActive(store: Store, workflows?: readonly string[], tags?: Tags): Promise<boolean> {
  return exists(store, { ...inSelection(workflows, tags), state: { $in: [...ACTIVE_STATES] } });
}

/**
 * Whether one of `ids` is not final yet. Filter `{_id: {$in}, state: {$nin: FINAL}}`; index `_id`.
 * Guard: "find with _id $in and another condition is answered through the _id index (explain)".
 */
export function anyUnfinished(store: Store, ids: readonly string[]): Promise<boolean> {
  return exists(store, { _id: { $in: [...ids] }, state: { $nin: [...FINAL_STATES] } });
}

/**
 * The parents of (at most `limit`) jobs waiting on parents, deduplicated:
 * the launcher's idle check and the service release their children.
 * Filter `{workflow?, "tags.K"?, state: {$in: states}}`; index `{workflow, state}` or `{state}`.
 * Guard: "find by workflow and state $in is answered through an index and matches arrays too (explain)".
 */
export async function parentsOfWaiting(store: Store, f: { workflows?: readonly string[]; tags?: Tags; states?: readonly JobState[]; limit: number }): Promise<string[]> {
  const states = f.states ?? WAITING_STATES;
  const waiting = await coll(store).jobs.find({ ...inSelection(f.workflows, f.tags), state: { $in: [...states] } }, { projection: { parents: 1 }, limit: f.limit }).toArray();
  return [...new Set(waiting.flatMap((w) => w.parents))];
}

/** Of `ids`, the final ones. Index `_id`; guard as anyUnfinished. */
export async function finalIds(store: Store, ids: readonly string[]): Promise<string[]> {
  const docs = await coll(store).jobs.find({ _id: { $in: [...ids] }, state: { $in: [...FINAL_STATES] } }, { projection: { _id: 1 } }).toArray();
  return docs.map((d) => d._id);
}

/**
 * How many jobs of `workflows` are runnable or waiting. Index `{workflow, state}`.
 * Guard: "counts by state and by workflow and state are exact and answered through the indexes (explain)".
 */
export function countRunnableOrWaiting(store: Store, workflows: readonly string[]): Promise<number> {
  return coll(store).jobs.countDocuments({ workflow: { $in: [...workflows] }, state: { $in: [...RUNNABLE_STATES, ...WAITING_STATES] } });
}

/**
 * Runnable jobs per workflow (the service compares them with the jobs its
 * queues offer). Pipeline `$match state $in RUNNABLE, $group workflow`; index `{state}`.
 * Guard: "counts by state and by workflow and state are exact and answered through the indexes (explain)".
 */
export async function runnableByWorkflow(store: Store): Promise<Array<{ workflow: string; n: number }>> {
  const rows = await coll(store).jobs.aggregate<{ _id: string; n: number }>([{ $match: { state: { $in: [...RUNNABLE_STATES] } } }, { $group: { _id: "$workflow", n: { $sum: 1 } } }]).toArray();
  return rows.map((r) => ({ workflow: r._id, n: r.n }));
}

/**
 * Runnable jobs (of `workflows`) by size, within a launcher's `maxMinutes`,
 * and how many need longer: what the service's auto-submission sizes a
 * launch by, with the GPUs each job takes (gpusPerRank; 0 when none).
 * Index `{workflow, state}` or `{state}`; guard as runnableByWorkflow.
 */
export async function runnableBySize(
  store: Store,
  workflows: readonly string[],
  maxMinutes: number,
): Promise<{ buckets: Array<{ numNodes: number; nodePackingCount: number; gpusPerRank: number; count: number }>; tooLong: number }> {
  const q: Filter<Job> = { ...inWorkflows(workflows.length ? workflows : undefined), state: { $in: [...RUNNABLE_STATES] } };
  const rows = await coll(store)
    .jobs.aggregate<{ _id: { n: number; p: number; g?: number | null }; c: number }>([
      { $match: { ...q, wallTimeMinutes: { $lte: maxMinutes } } },
      { $group: { _id: { n: "$numNodes", p: "$nodePackingCount", g: "$gpusPerRank" }, c: { $sum: 1 } } },
    ])
    .toArray();
  const tooLong = await coll(store).jobs.countDocuments({ ...q, wallTimeMinutes: { $gt: maxMinutes } });
  return { buckets: rows.map((r) => ({ numNodes: r._id.n ?? 1, nodePackingCount: r._id.p ?? 1, gpusPerRank: r._id.g ?? 0, count: r.c })), tooLong };
}

/**
 * Active jobs whose lease ended before `now` (the server's time), at most
 * `limit`. Filter `{state: {$in: ACTIVE}, "lock.until": {$lt: now}}`; index `{"lock.until"}`.
 * Guard: test/conformance/server-clock.conformance.test.ts "a conditional update on a nested date ($lt, …)".
 */
export function lapsedLeases(store: Store, now: Date, limit: number): Promise<Job[]> {
  return coll(store).jobs.find({ state: { $in: [...ACTIVE_STATES] }, "lock.until": { $lt: now } }, { limit }).toArray();
}

/**
 * The queue pointers (id, workflow, attempts, numNodes, chunk) of the runnable
 * jobs of `workflows` (all when undefined), streamed. Index `{workflow, state}` or `{state}`.
 * Guard: "find by workflow and state $in is answered through an index and matches arrays too (explain)".
 */
export function runnablePointers(store: Store, workflows?: readonly string[]): FindCursor<Pick<Job, "_id" | "workflow" | "attempts" | "numNodes" | "chunk">> {
  return coll(store).jobs.find({ ...inWorkflows(workflows), state: { $in: [...RUNNABLE_STATES] } }, { projection: { _id: 1, workflow: 1, attempts: 1, numNodes: 1, chunk: 1 } });
}

/**
 * Children of `parents` in `state` (all fields, or `fields`), chunked.
 * Filter `{parents: {$in}, state}`; index `{parents}`.
 * Guard: "find by workflow and state $in is answered through an index and matches arrays too (explain)" (arrays).
 */
export async function childrenIn<K extends keyof Job = keyof Job>(store: Store, parents: readonly string[], state: JobState, fields?: readonly K[]): Promise<Array<Pick<Job, "_id" | K>>> {
  const out: Array<Pick<Job, "_id" | K>> = [];
  const projection = fields ? Object.fromEntries(fields.map((f) => [f, 1])) : undefined;
  for (const chunk of chunked([...parents], MAX_IN_IDS)) out.push(...(await coll(store).jobs.find({ parents: { $in: chunk }, state }, projection ? { projection } : {}).toArray()));
  return out;
}

/**
 * The jobs matching a query (from jobFilterQuery) that are runnable, or all
 * of them when the query names its own state. Index as the query's.
 */
export async function runnableMatching(store: Store, query: Filter<Job>): Promise<Job[]> {
  const q = "state" in query ? query : { ...query, state: { $in: [...RUNNABLE_STATES] } };
  return coll(store).jobs.find(q).toArray();
}
