import { randomUUID } from "node:crypto";
import type { Filter } from "mongodb";
import {
  overDefaults,
  isJobState,
  tagsQuery,
  JOB_STATES,
  RUNNABLE_STATES,
  WAITING_STATES,
  type Job,
  type JobSpec,
  type JobState,
} from "../models/index.js";
import { AmbiguousIdError, NotFoundError, UsageError } from "../errors/index.js";
import type { Store } from "./connection.js";
import { escapeRegex } from "./apps.js";
import { chunked, MAX_IN_IDS } from "./bulk.js";
import { findPage } from "./find-page.js";
import { coll } from "./collections.js";
import { ensureTagIndexes } from "./tag-indexes.js";

/**
 * Builds a full job document from a spec; the initial state follows its
 * parents. `createdMessage` is its first history line's message (0.x wrote
 * "spawned by [name | id]" there for a spawned child).
 */
export function buildJob(spec: JobSpec, now = new Date(), createdMessage = ""): Job {
  if (!spec.name) throw new UsageError("a job needs a name");
  if (!spec.workflow) throw new UsageError("a job needs a workflow");
  if (!spec.application) throw new UsageError("a job needs an application");
  const parents = spec.parents ?? [];
  const state: JobState = parents.length > 0 && (spec.waitForParents ?? true) ? "AWAITING_PARENTS" : "READY";
  const j = overDefaults(spec, (_, v) => v !== undefined);
  j._id = spec._id ?? randomUUID();
  j.tags = spec.tags ?? {};
  j.parents = parents;
  j.data = spec.data ?? {};
  j.environVars = spec.environVars ?? {};
  j.state = state;
  j.stateHistory = [
    { at: now, state: "CREATED", message: createdMessage },
    { at: now, state, message: parents.length ? `waiting on ${parents.length} parent(s)` : "" },
  ];
  j.lock = null;
  j.attempts = 0;
  j.exitCode = null;
  j.runtimeSeconds = null;
  j.createdAt = now;
  j.updatedAt = now;
  return j as unknown as Job;
}

/**
 * Inserts many jobs in one unordered `insertMany`: a duplicate id fails that
 * document alone. Documents are built by the caller so the queue side can use
 * the same ids.
 */
export async function insertJobs(store: Store, jobs: Job[]): Promise<void> {
  if (jobs.length === 0) return;
  await ensureTagIndexes(store, jobs.map((j) => j.tags));
  await coll(store).jobs.insertMany(jobs, { ordered: false });
}

/**
 * The selectors the CLI and the API share, matched as Balsam 0.x matched
 * them (Django's `name__icontains`, `workflow__icontains`, `job_id__icontains`).
 * Every given selector narrows the result.
 */
export interface JobFilter {
  /** Case-insensitive literal substring of the name (not a regex). */
  name?: string;
  /** Case-insensitive substring of the job id, anywhere in it. */
  id?: string;
  ids?: string[];
  /** Exact workflow name. */
  workflow?: string;
  /** Case-insensitive substring of the workflow name (`ls --wf`); see resolveWorkflows. */
  workflowContains?: string;
  workflows?: string[];
  state?: JobState | JobState[];
  /** Jobs having this job among their parents. */
  parent?: string;
  application?: string;
  /** Jobs carrying every one of these tags (Balsam 2's `tags` filter); served by the `tag_K` indexes. */
  tags?: Record<string, string>;
}

/**
 * The query for a filter whose `workflowContains` has been resolved (see
 * resolveJobFilter); throws if it has not, since the substring is not a
 * MongoDB condition the indexes can serve.
 */
export function jobFilterQuery(f: JobFilter): Filter<Job> {
  const q: Record<string, unknown> = {};
  if (f.name !== undefined && f.name !== "") q.name = { $regex: escapeRegex(f.name), $options: "i" };
  if (f.id !== undefined && f.id !== "") q._id = { $regex: escapeRegex(f.id), $options: "i" };
  if (f.ids) q._id = { $in: f.ids };
  if (f.workflowContains !== undefined) throw new Error("jobFilterQuery: resolve workflowContains first (resolveJobFilter)");
  if (f.workflow !== undefined) q.workflow = f.workflow;
  else if (f.workflows) q.workflow = { $in: f.workflows };
  if (f.state !== undefined) {
    const states = Array.isArray(f.state) ? f.state : [f.state];
    for (const s of states) {
      if (!isJobState(s)) throw new UsageError(`unknown state '${s}'`, { hint: `states: ${JOB_STATES.join(", ")}` });
    }
    q.state = states.length === 1 ? states[0] : { $in: states };
  }
  if (f.parent) q.parents = f.parent;
  if (f.application) q.application = f.application;
  // `tags.K: V` per tag: each key's index answers it (libs/store/tag-indexes.ts).
  Object.assign(q, tagsQuery(f.tags));
  return q as Filter<Job>;
}

/** Validates a filter's states without running anything. */
export function checkJobFilter(f: JobFilter): void {
  jobFilterQuery({ ...f, workflowContains: undefined });
}

/**
 * Every workflow name, from one `$group` by workflow: on the project's
 * FerretDB that walks the {workflow, state} index (patch 0010), a few
 * milliseconds at a million jobs, where `distinct` decodes every job.
 */
export async function listWorkflows(store: Store): Promise<string[]> {
  const rows = await coll(store).jobs.aggregate<{ _id: string }>([{ $group: { _id: "$workflow" } }]).toArray();
  return rows.map((r) => r._id).filter((w): w is string => typeof w === "string").sort();
}

/**
 * The workflows whose name contains `part`, ignoring case, as 0.x's
 * `workflow__icontains` matched them. Workflows are few next to jobs, so
 * the substring is resolved to names first and the jobs are then selected
 * with `workflow $in [...]` through the index.
 */
export async function resolveWorkflows(store: Store, part: string): Promise<string[]> {
  const needle = part.toLowerCase();
  return (await listWorkflows(store)).filter((w) => w.toLowerCase().includes(needle));
}

/**
 * The filter with `workflowContains` replaced by the workflows it matches
 * (intersected with `workflow`/`workflows` when given too); `null` when no
 * job can match, so callers answer without a query.
 */
export async function resolveJobFilter(store: Store, f: JobFilter): Promise<JobFilter | null> {
  if (f.workflowContains === undefined) return f.workflows?.length === 0 ? null : f;
  let wfs = await resolveWorkflows(store, f.workflowContains);
  if (f.workflow !== undefined) wfs = wfs.filter((w) => w === f.workflow);
  if (f.workflows) wfs = wfs.filter((w) => f.workflows?.includes(w));
  if (wfs.length === 0) return null;
  const rest: JobFilter = { ...f, workflowContains: undefined, workflow: undefined, workflows: undefined };
  return wfs.length === 1 ? { ...rest, workflow: wfs[0] } : { ...rest, workflows: wfs };
}

export function isEmptyFilter(f: JobFilter): boolean {
  return f.workflowContains === undefined && Object.keys(jobFilterQuery(f)).length === 0;
}

export interface FindOptions {
  limit?: number;
  skip?: number;
  projection?: Record<string, 0 | 1>;
  sort?: Record<string, 1 | -1>;
}

export async function findJobs(store: Store, f: JobFilter, opts: FindOptions = {}): Promise<Job[]> {
  const r = await resolveJobFilter(store, f);
  if (!r) return [];
  // A bounded read (every `ls`) goes through the find command, in one batch: see findPage.
  if (opts.limit) return findPage<Job>(store, "jobs", jobFilterQuery(r), { ...opts, limit: opts.limit });
  let cur = coll(store).jobs.find(jobFilterQuery(r));
  if (opts.projection) cur = cur.project(opts.projection);
  if (opts.sort) cur = cur.sort(opts.sort);
  if (opts.skip) cur = cur.skip(opts.skip);
  return cur.toArray();
}

export async function countJobs(store: Store, f: JobFilter): Promise<number> {
  const r = await resolveJobFilter(store, f);
  return r ? coll(store).jobs.countDocuments(jobFilterQuery(r)) : 0;
}

/**
 * Counts per state, with `$group` + `$sum`: both MongoDB and FerretDB run
 * it, and the project's FerretDB answers it from the indexes (patch 0010)
 * when the filter is made of workflow/state equalities.
 */
export async function countByState(store: Store, f: JobFilter): Promise<Partial<Record<JobState, number>>> {
  const r = await resolveJobFilter(store, f);
  if (!r) return {};
  const rows = await coll(store).jobs
    .aggregate<{ _id: JobState; n: number }>([{ $match: jobFilterQuery(r) }, { $group: { _id: "$state", n: { $sum: 1 } } }])
    .toArray();
  const out: Partial<Record<JobState, number>> = {};
  for (const row of rows) out[row._id] = row.n;
  return out;
}

/** Counts per workflow and state. */
export async function countByWorkflowState(store: Store, f: JobFilter = {}): Promise<Array<{ workflow: string; state: JobState; n: number }>> {
  const r = await resolveJobFilter(store, f);
  if (!r) return [];
  const rows = await coll(store).jobs
    .aggregate<{ _id: { workflow: string; state: JobState }; n: number }>([
      { $match: jobFilterQuery(r) },
      { $group: { _id: { workflow: "$workflow", state: "$state" }, n: { $sum: 1 } } },
    ])
    .toArray();
  return rows.map((row) => ({ workflow: row._id.workflow, state: row._id.state, n: row.n }));
}

/**
 * A job by full id or by any unique part of it (case-insensitive, as 0.x's
 * `job_id__icontains`). An ambiguous part lists the candidates (up to 10) so
 * the user can pick.
 */
export async function getJob(store: Store, idOrPart: string): Promise<Job> {
  const needle = idOrPart.trim();
  if (!needle) throw new UsageError("empty job id");
  const exact = await coll(store).jobs.findOne({ _id: needle });
  if (exact) return exact;
  const found = await coll(store).jobs.find({ _id: { $regex: escapeRegex(needle), $options: "i" } }).limit(11).toArray();
  if (found.length === 0) throw new NotFoundError(`no job whose id contains '${needle}'`, { hint: "`balsam ls` shows job ids" });
  if (found.length > 1) throw new AmbiguousIdError(needle, found.slice(0, 10).map((j) => j._id), found.length > 10);
  return found[0] as Job;
}

export async function childrenOf(store: Store, id: string): Promise<Job[]> {
  return coll(store).jobs.find({ parents: id }).toArray();
}

/** Every job below `ids` in the dependency graph (not including them). */
export async function descendantsOf(store: Store, ids: string[]): Promise<Job[]> {
  const seen = new Set(ids);
  const out: Job[] = [];
  let frontier = ids;
  while (frontier.length > 0) {
    const kids = await coll(store).jobs.find({ parents: { $in: frontier } }).toArray();
    frontier = [];
    for (const k of kids) {
      if (seen.has(k._id)) continue;
      seen.add(k._id);
      out.push(k);
      frontier.push(k._id);
    }
  }
  return out;
}

/**
 * Jobs that depend on `ids` and are not among them: direct children, or with
 * `recursive` everything below. `$in` lists are chunked as in deleteJobsByIds
 * so deleting a whole 1M-job workflow does not send one giant query.
 */
export async function dependentsOf(
  store: Store,
  ids: readonly string[],
  opts: { recursive?: boolean; projection?: Record<string, 0 | 1> } = {},
): Promise<Job[]> {
  const seen = new Set(ids);
  const out: Job[] = [];
  let frontier = [...ids];
  while (frontier.length > 0) {
    const next: string[] = [];
    // Large chunks: on FerretDB each query is a scan of the whole collection.
    for (let i = 0; i < frontier.length; i += 50_000) {
      let cur = coll(store).jobs.find({ parents: { $in: frontier.slice(i, i + 50_000) } });
      if (opts.projection) cur = cur.project({ ...opts.projection, _id: 1 });
      for (const k of await cur.toArray()) {
        if (seen.has(k._id)) continue;
        seen.add(k._id);
        out.push(k);
        next.push(k._id);
      }
    }
    frontier = opts.recursive ? next : [];
  }
  return out;
}

export async function deleteJobsByIds(store: Store, ids: string[]): Promise<number> {
  let n = 0;
  // `_id $in` is an index lookup on MongoDB and on our FerretDB (patch 0003);
  // bounded lists keep each command small.
  for (const chunk of chunked(ids, MAX_IN_IDS)) {
    const res = await coll(store).jobs.deleteMany({ _id: { $in: chunk } });
    n += res.deletedCount;
  }
  return n;
}

/**
 * Takes back jobs an add inserted before a later step of it failed: returns
 * the ids taken back and how many of the add's jobs stay. Only jobs created
 * since `since` are the add's (a job that already had one of the ids, which
 * the insert refused as a duplicate, is left alone), and only those no
 * launcher has claimed are taken (one that took a job through an entry that
 * did reach Redis keeps it).
 */
export async function takeBackAddedJobs(store: Store, ids: string[], since: Date): Promise<{ takenBack: string[]; stay: number }> {
  const takenBack: string[] = [];
  let stay = 0;
  const unclaimed = { $in: [...WAITING_STATES, ...RUNNABLE_STATES] };
  for (const chunk of chunked(ids, MAX_IN_IDS)) {
    const ours = { _id: { $in: chunk }, createdAt: { $gte: since } };
    const gone = (await coll(store).jobs.find({ ...ours, state: unclaimed }, { projection: { _id: 1 } }).toArray()).map((j) => j._id);
    if (gone.length) await coll(store).jobs.deleteMany({ _id: { $in: gone }, state: unclaimed });
    takenBack.push(...gone);
    stay += await coll(store).jobs.countDocuments(ours);
  }
  return { takenBack, stay };
}
