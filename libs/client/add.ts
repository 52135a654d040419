import { checkJobForLaunch, checkJobLimits, checkNoNaN, checkSpecTags, cuteId, isRunnable, MAX_JOB_COUNT, type Job, type JobLimits, type JobSpec } from "../models/index.js";
import { BalsamError, NotFoundError, UsageError, coerceError } from "../errors/index.js";
import { appNamesAmong, buildJob, getJob, insertJobs, markHasChildren, statesOf, takeBackAddedJobs } from "../store/index.js";
import { queueName } from "../queue/names.js";
import { chunkEntryId } from "../queue/index.js";
import { dropEntries, queueItem } from "./queue-item.js";
import type { JobsContext } from "./context.js";

/**
 * Adds many jobs: unordered `insertMany`s and bulk enqueues of the runnable
 * ones, in parts that grow (write()), so launchers start on the first part
 * while the rest is written. Everything is validated before anything is
 * written; if a write fails half-way (Redis refusing the queue entries after
 * MongoDB took the jobs), the jobs are taken back, so a retry never makes
 * duplicates.
 */
export async function addMany(ctx: JobsContext, specs: readonly JobSpec[], opts: AddJobOptions = {}): Promise<Job[]> {
  if (specs.length === 0) return [];
  const since = new Date();
  const jobs = await prepare(ctx, specs, since, opts);
  try {
    await write(ctx, jobs);
  } catch (err) {
    throw await takeBack(ctx, jobs, since, err);
  }
  return jobs;
}

/**
 * Adds jobs chunk by chunk (one `addMany`-sized write each), so a million
 * specs never sit in memory at once, all or nothing as `addMany`: a chunk
 * that fails takes the chunks before it back too. Returns how many were
 * added; `onAdded` hears the running total after each chunk.
 */
export async function addChunks(ctx: JobsContext, chunks: Iterable<readonly JobSpec[]>, onAdded?: (added: number) => void): Promise<number> {
  const since = new Date();
  // Only what takeBack needs: a million full documents would not fit.
  const written: Array<Pick<Job, "_id" | "workflow" | "attempts" | "state" | "chunk">> = [];
  // A chunk's queue entries go to Redis while the next chunk goes to
  // MongoDB: the two servers work side by side, and 100k dummies cost the
  // inserts' time plus one chunk's enqueue instead of the sum of both.
  let enqueuing: Promise<unknown> = Promise.resolve();
  let enqueued = 0;
  try {
    for (const specs of chunks) {
      if (specs.length === 0) continue;
      const jobs = await prepare(ctx, specs, new Date());
      assignChunks(jobs);
      for (const j of jobs) written.push({ _id: j._id, workflow: j.workflow, attempts: j.attempts, state: j.state, chunk: j.chunk });
      await insert(ctx, jobs);
      await enqueuing;
      onAdded?.(enqueued);
      enqueuing = enqueue(ctx, jobs).then(() => (enqueued += jobs.length));
      // Awaited at the next chunk or after the loop; until then a failure must not count as unhandled.
      enqueuing.catch(() => undefined);
    }
    await enqueuing;
    onAdded?.(enqueued);
  } catch (err) {
    throw await takeBack(ctx, written, since, err);
  }
  return written.length;
}

/** Validates specs (apps, workflows, fields, parents) and builds their documents; writes nothing. */
async function prepare(ctx: JobsContext, specs: readonly JobSpec[], now: Date, opts: AddJobOptions = {}): Promise<Job[]> {
  // 0.x's provenance line, the first of a spawned child's history (its `dag.spawn_child`).
  const created = opts.spawnedBy ? `spawned by ${cuteId(await getJob(ctx.store, opts.spawnedBy))}` : "";
  const apps = new Set(specs.map((s) => s.application));
  const known = await appNamesAmong(ctx.store, [...apps]);
  for (const a of apps) {
    if (!known.has(a)) throw new NotFoundError(`no app named '${a}'`, { hint: "`balsam ls apps` lists them; `balsam app --name ... --executable ...` adds one" });
  }
  const jobs = specs.map((s) => {
    queueName(s.workflow);
    validateSpec(s, ctx.limits);
    checkNoNaN(s);
    return buildJob(s, now, created);
  });
  const parentIds = [...new Set(jobs.flatMap((j) => j.parents))];
  if (parentIds.length) {
    const states = await statesOf(ctx.store, parentIds);
    for (const id of parentIds) if (!states.has(id)) throw new NotFoundError(`parent job ${id} does not exist`);
    for (const j of jobs) {
      // A child whose parents all finished already is runnable at once.
      if (j.state === "AWAITING_PARENTS" && j.parents.every((p) => states.get(p) === "JOB_FINISHED")) {
        j.state = "READY";
        j.stateHistory.push({ at: now, state: "READY", message: "parents already finished" });
      }
    }
  }
  return jobs;
}

/** The first part of an addMany's write, and the most a part grows to (doubling from the first). */
const FIRST_PART = 250;
const LARGEST_PART = 2000;

/**
 * Writes jobs part by part, each part's queue entries going to Redis while
 * the next part goes to MongoDB. One insert of everything first held every
 * launcher idle until the last document was in: 5,000 jobs took the embedded
 * server ~2–3 s (measured), a tenth of the time a launcher then needed to
 * run them as no-ops. Now the first 250 are runnable after ~0.1 s.
 */
async function write(ctx: JobsContext, jobs: Job[]): Promise<void> {
  let enqueuing: Promise<void> = Promise.resolve();
  try {
    for (let i = 0, size = FIRST_PART; i < jobs.length; i += size, size = Math.min(LARGEST_PART, size * 2)) {
      const part = jobs.slice(i, i + size);
      // Per part: a chunk's jobs reach Redis in one enqueue, so its one entry lists them all.
      assignChunks(part);
      await insert(ctx, part);
      await enqueuing;
      enqueuing = enqueue(ctx, part);
      // Awaited at the next part or after the loop; until then a failure must not count as unhandled.
      enqueuing.catch(() => undefined);
    }
    await enqueuing;
  } catch (err) {
    // The caller takes the jobs back: no enqueue may still be adding entries then.
    await enqueuing.catch(() => undefined);
    throw err;
  }
}

/**
 * Jobs per chunk entry. A launcher takes a chunk's jobs as its slots free,
 * so a chunk is also the most one launcher holds ahead of its slots per
 * entry in hand (dispatch.ts); short jobs then cost BullMQ one entry per
 * CHUNK_SIZE instead of one each.
 */
export const CHUNK_SIZE = 8;

/**
 * Groups the part's runnable serial untagged jobs, per workflow, into
 * chunks of CHUNK_SIZE: each job records its chunk's entry id. MPI jobs
 * keep entries of their own (their priority is their size), and so do
 * tagged ones (a tagged launcher decides from the entry, reading nothing:
 * tag-filter.ts). Before the insert, so the field is in the documents
 * reconciliation reads: it offers the chunk again, never the job alone;
 * and per part written, so one enqueue carries all of a chunk's jobs.
 */
function assignChunks(jobs: Job[]): void {
  const open = new Map<string, Job[]>();
  for (const j of jobs) {
    if (!isRunnable(j.state) || j.numNodes > 1 || Object.keys(j.tags).length > 0) continue;
    let group = open.get(j.workflow);
    if (!group || group.length === CHUNK_SIZE) open.set(j.workflow, (group = []));
    group.push(j);
    // A chunk of one saves nothing: the job keeps an entry of its own.
    if (group.length === 2) group[0]!.chunk = group[1]!.chunk = chunkEntryId(group[0]!._id);
    else if (group.length > 2) j.chunk = group[0]!.chunk;
  }
}

/** The MongoDB half of a write: the documents, and `hasChildren` on their parents. */
async function insert(ctx: JobsContext, jobs: Job[]): Promise<void> {
  await insertJobs(ctx.store, jobs);
  const parentIds = [...new Set(jobs.flatMap((j) => j.parents))];
  // A new version too: a launcher running a queued parent from its entry's snapshot (which says no children) then re-reads it before recording it finished, and releases the new child.
  await markHasChildren(ctx.store, parentIds);
}

/** The Redis half of a write: queue entries of the runnable jobs. */
async function enqueue(ctx: JobsContext, jobs: Job[]): Promise<void> {
  try {
    // The chunks were made just now: their entries are new, and carry their jobs' snapshots.
    await ctx.queues.enqueue(jobs.filter((j) => isRunnable(j.state)).map(queueItem), { newChunks: true });
  } catch (err) {
    throw new Error(`Redis refused the queue entries: ${coerceError(err).message}`, { cause: err });
  }
}

/**
 * Undoes a half-done add and returns the error to throw, saying what is
 * left. Parents keep `hasChildren: true`: it only costs a dependents query
 * when they finish, while clearing it could race another add of a child
 * to the same parent and leave that child waiting forever.
 */
async function takeBack(ctx: JobsContext, written: ReadonlyArray<Pick<Job, "_id" | "workflow" | "attempts" | "state" | "chunk">>, since: Date, err: unknown): Promise<Error> {
  // Nothing written (a later chunk failed validation before any write): the error says it all.
  if (written.length === 0) return coerceError(err);
  const reason = coerceError(err).message;
  let kept: number;
  let takenBack: Set<string>;
  try {
    const r = await takeBackAddedJobs(ctx.store, written.map((j) => j._id), since);
    kept = r.stay;
    takenBack = new Set(r.takenBack);
  } catch (undoErr) {
    // The jobs stay as they were written; the service and idle launchers
    // re-enqueue runnable jobs Redis does not hold (reenqueueRunnable).
    return new BalsamError("RUNTIME", `${reason}; the ${written.length} job(s) could not be taken back (${coerceError(undoErr).message}): those in MongoDB stay, and \`balsam service\` or an idle launcher queues them`, {
      cause: err,
      hint: "do not add them again; `balsam ls` shows them",
    });
  }
  // Entries that did reach Redis would point at deleted jobs, which launchers skip; removing them is only tidiness.
  const entries = written.filter((j) => takenBack.has(j._id) && isRunnable(j.state)).map((j) => ({ id: j._id, workflow: j.workflow, attempts: j.attempts, chunk: j.chunk }));
  await dropEntries(ctx, entries).catch(() => 0);
  if (kept === 0) {
    return err instanceof BalsamError ? err : new BalsamError("RUNTIME", `nothing was added: ${reason}`, { cause: err, hint: "retry once the server accepts writes" });
  }
  return new BalsamError("RUNTIME", `${reason}; ${kept} of the ${written.length} job(s) had already been taken by a launcher and stay, the others were not added`, {
    cause: err,
    hint: "`balsam ls` shows the ones that stay",
  });
}

/** How jobs are added. */
export interface AddJobOptions {
  /**
   * The job (id or unique prefix) that spawned them: their first history
   * line says "spawned by [name | id8]", as 0.x's `dag.spawn_child` wrote.
   */
  spawnedBy?: string;
}

/** Refuses a spec whose counts, times, affinity or tags are out of range, that names no job, or that no node of the site can hold (`limits`). */
export function validateSpec(s: JobSpec, limits: JobLimits = {}): void {
  const counts: Array<[string, number | undefined, number]> = [
    ["num_nodes", s.numNodes, 1],
    ["ranks_per_node", s.ranksPerNode, 1],
    ["threads_per_rank", s.threadsPerRank, 1],
    ["threads_per_core", s.threadsPerCore, 1],
    ["node_packing_count", s.nodePackingCount, 1],
    ["gpus_per_rank", s.gpusPerRank, 0],
    ["coschedule_num_nodes", s.coscheduleNumNodes, 0],
    ["fast_fail_retries", s.fastFailRetries, 0],
  ];
  for (const [name, v, min] of counts) {
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < min) throw new UsageError(`${name} must be a whole number ≥ ${min}, not ${v}`);
    if (v > MAX_JOB_COUNT) throw new UsageError(`${name} must be a whole number ≤ ${MAX_JOB_COUNT}, not ${v}`);
  }
  if (s.wallTimeMinutes !== undefined && (!Number.isFinite(s.wallTimeMinutes) || s.wallTimeMinutes < 0 || s.wallTimeMinutes > MAX_JOB_COUNT)) {
    throw new UsageError(`wall_time_minutes must be from 0 to ${MAX_JOB_COUNT}, not ${s.wallTimeMinutes}`);
  }
  if (s.cpuAffinity !== undefined && s.cpuAffinity !== "none" && s.cpuAffinity !== "depth") {
    throw new UsageError(`cpu_affinity must be none or depth, not ${String(s.cpuAffinity)}`);
  }
  if (!s.name.trim()) throw new UsageError("a job needs a name");
  checkJobLimits(s, limits);
  checkSpecTags(s.tags);
  checkJobForLaunch(s);
}
