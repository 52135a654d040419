import {
  canTransition,
  allowedTransitions,
  checkJobForLaunch,
  cuteId,
  isFinal,
  isRunnable,
  isActive,
  isLaunchField,
  RUNNABLE_STATES,
  transitionPath,
  FINAL_STATES,
  MAX_JOB_COUNT,
  RERUN_REQUESTS,
  checkJobLimits,
  type JobLimits,
  checkSpecTags,
  type Job,
  type JobSpec,
  type JobState,
} from "../models/index.js";
import { BalsamError, ConflictError, InvalidTransitionError, NotFoundError, UsageError, coerceError } from "../errors/index.js";
import {
  buildJob,
  chunked,
  MAX_BULK_OPS,
  MAX_IN_IDS,
  childrenOf,
  countByState,
  countByWorkflowState,
  countJobs,
  dependentsOf,
  deleteJobsByIds,
  ensureTagIndexes,
  descendantsOf,
  findJobs,
  getJob,
  insertJobs,
  checkJobFilter,
  isEmptyFilter,
  jobFilterQuery,
  listWorkflows,
  recordTransitions,
  resolveJobFilter,
  resolveWorkflows,
  takeBackAddedJobs,
  transitionJob,
  type FindOptions,
  type JobFilter,
  type Store,
  type Transition,
} from "../store/index.js";
import { queueName } from "../queue/names.js";
import type { JobQueues } from "../queue/index.js";
import { queueItem } from "./queue-item.js";
import { leaseHeld } from "./lease.js";
import { addDependency, setParents } from "./parents.js";

export type { JobFilter };

export { queueItem };

/** The kill channel: launchers holding a job stop its process when its id arrives here. */
export const KILL_CHANNEL = "kill";
/** Jobs reaching a final state are announced here as JSON `{id, state, workflow, result}`. */
export const FINISHED_CHANNEL = "finished";

/** What deleting a job needs to know of it. */
export type DeleteVictim = Pick<Job, "_id" | "name" | "workflow" | "attempts" | "state" | "lock">;

/** A lazily-run query over jobs: `jobs.filter({ name: "task", workflow: "TEST" }).delete()`. */
export class JobQuery {
  constructor(
    private readonly api: JobsApi,
    readonly filter: JobFilter,
  ) {
    checkJobFilter(filter); // validates states up front
  }
  /** The matching jobs (unordered unless `opts.sort`), with `projection`/`limit`/`skip` as in MongoDB. */
  list(opts: FindOptions = {}): Promise<Job[]> {
    return findJobs(this.api.store, this.filter, opts);
  }
  /** How many jobs match. */
  count(): Promise<number> {
    return countJobs(this.api.store, this.filter);
  }
  /** Counts per state, in one aggregation. */
  byState(): Promise<Partial<Record<JobState, number>>> {
    return countByState(this.api.store, this.filter);
  }
  /** Counts per workflow and state, in one aggregation. */
  byWorkflowState(): Promise<Array<{ workflow: string; state: JobState; n: number }>> {
    return countByWorkflowState(this.api.store, this.filter);
  }
  /**
   * Deletes the matching jobs and their queue entries; returns how many were
   * deleted. Jobs a launcher is running are refused unless `evenIfRunning`.
   */
  delete(opts: { evenIfRunning?: boolean } = {}): Promise<number> {
    return this.api.deleteWhere(this.filter, opts);
  }
  /**
   * Sets plain fields (not `state`: use `jobs.setState`) on every matching
   * job; returns how many changed. Unlike `jobs.modify` it does not check
   * leases: use it for fields a launcher does not write (description, data.*).
   */
  async update(set: Partial<Omit<Job, "_id" | "state" | "stateHistory">>): Promise<number> {
    if ("state" in set) throw new UsageError("update() does not change states; use jobs.setState(id, state)");
    const f = await resolveJobFilter(this.api.store, this.filter);
    if (!f) return 0;
    const query = jobFilterQuery(f);
    if (set.tags) await ensureTagIndexes(this.api.store, [set.tags]);
    const res = await this.api.store.jobs.updateMany(query, { $set: { ...set, updatedAt: new Date() } });
    if (res.modifiedCount > 0 && Object.keys(set).some((k) => isLaunchField(k.split(".")[0]!))) {
      // Queued jobs' entries carry them as they were (launch snapshots): replaced,
      // as jobs.modify does, so launchers run them as they now are.
      // The selection's own state, if any, stands; otherwise only runnable jobs are read.
      const q = "state" in query ? query : { ...query, state: { $in: [...RUNNABLE_STATES] } };
      const queued = (await this.api.store.jobs.find(q as never).toArray()).filter((j) => isRunnable(j.state));
      for (const chunk of chunked(queued, MAX_IN_IDS)) {
        await this.api.queues.remove(chunk.map(queueItem));
        await this.api.queues.enqueue(chunk.map(queueItem));
      }
    }
    return res.modifiedCount;
  }
}

export class JobsApi {
  constructor(
    readonly store: Store,
    readonly queues: JobQueues,
    readonly limits: JobLimits = {},
  ) {}

  /** Adds one job; its app must exist and its workflow must be usable as a queue name. */
  async add(spec: JobSpec, opts: AddJobOptions = {}): Promise<Job> {
    const [job] = await this.addMany([spec], opts);
    return job as Job;
  }

  /**
   * Adds many jobs with one unordered `insertMany` and one bulk enqueue of
   * the runnable ones. Everything is validated before anything is written;
   * if a write fails half-way (Redis refusing the queue entries after
   * MongoDB took the jobs), the jobs are taken back, so a retry never makes
   * duplicates.
   */
  async addMany(specs: readonly JobSpec[], opts: AddJobOptions = {}): Promise<Job[]> {
    if (specs.length === 0) return [];
    const since = new Date();
    const jobs = await this.prepare(specs, since, opts);
    try {
      await this.write(jobs);
    } catch (err) {
      throw await this.takeBack(jobs, since, err);
    }
    return jobs;
  }

  /**
   * Adds jobs chunk by chunk (one `addMany`-sized write each), so a million
   * specs never sit in memory at once, all or nothing as `addMany`: a chunk
   * that fails takes the chunks before it back too. Returns how many were
   * added; `onAdded` hears the running total after each chunk.
   */
  async addChunks(chunks: Iterable<readonly JobSpec[]>, onAdded?: (added: number) => void): Promise<number> {
    const since = new Date();
    // Only what takeBack needs: a million full documents would not fit.
    const written: Array<Pick<Job, "_id" | "workflow" | "attempts" | "state">> = [];
    // A chunk's queue entries go to Redis while the next chunk goes to
    // MongoDB: the two servers work side by side, and 100k dummies cost the
    // inserts' time plus one chunk's enqueue instead of the sum of both.
    let enqueuing: Promise<unknown> = Promise.resolve();
    let enqueued = 0;
    try {
      for (const specs of chunks) {
        if (specs.length === 0) continue;
        const jobs = await this.prepare(specs, new Date());
        for (const j of jobs) written.push({ _id: j._id, workflow: j.workflow, attempts: j.attempts, state: j.state });
        await this.insert(jobs);
        await enqueuing;
        onAdded?.(enqueued);
        enqueuing = this.enqueue(jobs).then(() => (enqueued += jobs.length));
        // Awaited at the next chunk or after the loop; until then a failure must not count as unhandled.
        enqueuing.catch(() => undefined);
      }
      await enqueuing;
      onAdded?.(enqueued);
    } catch (err) {
      throw await this.takeBack(written, since, err);
    }
    return written.length;
  }

  /** Validates specs (apps, workflows, fields, parents) and builds their documents; writes nothing. */
  private async prepare(specs: readonly JobSpec[], now: Date, opts: AddJobOptions = {}): Promise<Job[]> {
    // 0.x's provenance line, the first of a spawned child's history (its `dag.spawn_child`).
    const created = opts.spawnedBy ? `spawned by ${cuteId(await this.get(opts.spawnedBy))}` : "";
    const apps = new Set(specs.map((s) => s.application));
    const found = await this.store.apps.find({ name: { $in: [...apps] } }, { projection: { name: 1 } }).toArray();
    const known = new Set(found.map((a) => a.name));
    for (const a of apps) {
      if (!known.has(a)) throw new NotFoundError(`no app named '${a}'`, { hint: "`balsam ls apps` lists them; `balsam app --name ... --executable ...` adds one" });
    }
    const jobs = specs.map((s) => {
      queueName(s.workflow);
      validateSpec(s, this.limits);
      return buildJob(s, now, created);
    });
    const parentIds = [...new Set(jobs.flatMap((j) => j.parents))];
    if (parentIds.length) {
      const parents = await this.store.jobs.find({ _id: { $in: parentIds } }, { projection: { state: 1 } }).toArray();
      const states = new Map(parents.map((p) => [p._id, p.state]));
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

  private async write(jobs: Job[]): Promise<void> {
    await this.insert(jobs);
    await this.enqueue(jobs);
  }

  /** The MongoDB half of a write: the documents, and `hasChildren` on their parents. */
  private async insert(jobs: Job[]): Promise<void> {
    await insertJobs(this.store, jobs);
    const parentIds = [...new Set(jobs.flatMap((j) => j.parents))];
    // A new version too: a launcher running a queued parent from its entry's snapshot (which says no children) then re-reads it before recording it finished, and releases the new child.
    if (parentIds.length) await this.store.jobs.updateMany({ _id: { $in: parentIds }, hasChildren: false }, { $set: { hasChildren: true, updatedAt: new Date() } });
  }

  /** The Redis half of a write: queue entries of the runnable jobs. */
  private async enqueue(jobs: Job[]): Promise<void> {
    try {
      await this.queues.enqueue(jobs.filter((j) => isRunnable(j.state)).map(queueItem));
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
  private async takeBack(written: ReadonlyArray<Pick<Job, "_id" | "workflow" | "attempts" | "state">>, since: Date, err: unknown): Promise<Error> {
    // Nothing written (a later chunk failed validation before any write): the error says it all.
    if (written.length === 0) return coerceError(err);
    const reason = coerceError(err).message;
    let kept: number;
    let takenBack: Set<string>;
    try {
      const r = await takeBackAddedJobs(this.store, written.map((j) => j._id), since);
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
    const entries = written.filter((j) => takenBack.has(j._id) && isRunnable(j.state)).map((j) => ({ id: j._id, workflow: j.workflow, attempts: j.attempts }));
    await this.queues.remove(entries).catch(() => 0);
    if (kept === 0) {
      return err instanceof BalsamError ? err : new BalsamError("RUNTIME", `nothing was added: ${reason}`, { cause: err, hint: "retry once the server accepts writes" });
    }
    return new BalsamError("RUNTIME", `${reason}; ${kept} of the ${written.length} job(s) had already been taken by a launcher and stay, the others were not added`, {
      cause: err,
      hint: "`balsam ls` shows the ones that stay",
    });
  }

  /** One job by id or a unique part of it; NotFoundError / AmbiguousIdError otherwise. */
  get(idOrPrefix: string): Promise<Job> {
    return getJob(this.store, idOrPrefix);
  }

  /**
   * A query over jobs, as Balsam's Django `BalsamJob.objects.filter(...)`:
   * `name` and `id` match a case-insensitive literal substring, `workflow`
   * exactly, `workflowContains` by case-insensitive substring; every given
   * selector narrows. Nothing runs until `.list()`, `.count()`, `.delete()`
   * or `.update()`.
   */
  filter(f: JobFilter = {}): JobQuery {
    return new JobQuery(this, f);
  }

  /** Every workflow that has jobs, sorted. */
  workflows(): Promise<string[]> {
    return listWorkflows(this.store);
  }

  /** The workflows whose name contains `part`, ignoring case (0.x's `workflow__icontains`), sorted. */
  workflowsContaining(part: string): Promise<string[]> {
    return resolveWorkflows(this.store, part);
  }

  /** The direct children of a job. */
  children(id: string): Promise<Job[]> {
    return childrenOf(this.store, id);
  }

  /** Jobs depending on `ids` (not among them): direct children, or all descendants with `recursive`. */
  dependents(ids: readonly string[], opts: { recursive?: boolean; projection?: Record<string, 0 | 1> } = {}): Promise<Job[]> {
    return dependentsOf(this.store, ids, opts);
  }

  /**
   * Sets plain fields of one job, validated as `add` validates them. The
   * state goes through setState, and a job under a live launcher lease is
   * refused: the launcher is its only writer (DESIGN invariant 3).
   */
  async modify(idOrPrefix: string, set: Partial<Omit<Job, "_id" | "state" | "stateHistory" | "workflow">>, opts: { lease?: string } = {}): Promise<Job> {
    for (const k of ["_id", "state", "stateHistory", "workflow"]) {
      if (k in set) throw new UsageError(`modify() does not change ${k}${k === "state" ? "; use jobs.setState(id, state)" : ""}`);
    }
    const job = await this.get(idOrPrefix);
    // The job's own scripts hold its launcher's lease (see setState) and may edit it, as 0.x's `job.save()`.
    const lease = leaseHeld(job, opts.lease);
    const ownProcess = lease !== undefined;
    if (isActive(job.state) && job.lock && job.lock.until > new Date() && !ownProcess) {
      throw new ConflictError(`job ${job._id} is held by launcher ${job.lock.owner}`, { hint: "kill it with `balsam killjob`, or wait for it to finish" });
    }
    if (set.application !== undefined && set.application !== job.application) {
      if (!(await this.store.apps.findOne({ name: set.application }, { projection: { _id: 1 } }))) {
        throw new NotFoundError(`no app named '${set.application}'`, { hint: "`balsam ls apps` lists them" });
      }
    }
    validateSpec({ ...job, ...set } as JobSpec, this.limits);
    // Conditioned on the state read above, so a launcher claiming the job meanwhile wins.
    const cond: Record<string, unknown> = { _id: job._id, state: job.state };
    if (ownProcess) cond["lock.owner"] = lease;
    if (set.tags) await ensureTagIndexes(this.store, [set.tags]);
    const res = await this.store.jobs.updateOne(cond as never, { $set: { ...set, updatedAt: new Date() } });
    if (res.matchedCount !== 1) throw new ConflictError(`job ${job._id} changed state while being modified; try again`);
    const updated = await this.get(job._id);
    if (isRunnable(updated.state)) {
      // Its queue entry carries the job as it was (launch snapshot): replaced, so a
      // launcher runs the new version. One already taken is caught by the launcher's
      // write, conditioned on the old version, and run again as it now is.
      await this.queues.remove([queueItem(job)]);
      await this.queues.enqueue([queueItem(updated)]);
    }
    return updated;
  }

  /**
   * Deletes matching jobs and their queue entries. An empty filter deletes
   * nothing; jobs a launcher is running are refused unless `evenIfRunning`.
   */
  async deleteWhere(f: JobFilter, opts: { evenIfRunning?: boolean } = {}): Promise<number> {
    if (isEmptyFilter(f)) throw new UsageError("refusing to delete with an empty filter");
    const victims = await findJobs(this.store, f, { projection: { _id: 1, name: 1, workflow: 1, attempts: 1, state: 1, lock: 1 } });
    return this.deleteJobs(victims, opts);
  }

  /**
   * Deletes the given jobs and their queue entries, a chunk at a time; with
   * `signal`, a stop is heeded between chunks only, so every job is either
   * gone with its queue entry or untouched. Returns how many were deleted;
   * `onProgress` hears how many jobs have been dealt with after each chunk.
   */
  async deleteJobs(victims: ReadonlyArray<DeleteVictim>, opts: ProgressOptions & { evenIfRunning?: boolean } = {}): Promise<number> {
    if (!opts.evenIfRunning) this.refuseRunning(victims);
    let n = 0;
    let done = 0;
    for (const chunk of chunked([...victims], MAX_IN_IDS)) {
      if (opts.signal?.aborted) break;
      n += await deleteJobsByIds(this.store, chunk.map((v) => v._id));
      await this.queues.remove(chunk.filter((v) => isRunnable(v.state)).map((v) => ({ id: v._id, workflow: v.workflow, attempts: v.attempts })));
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
  refuseRunning(victims: ReadonlyArray<Pick<Job, "_id" | "name" | "state" | "lock">>): void {
    const now = new Date();
    const running = victims.filter((j) => isActive(j.state) && j.lock && j.lock.until > now);
    if (running.length === 0) return;
    const shown = running.slice(0, 5).map((j) => `${j.name} (${j._id})`).join(", ");
    const more = running.length > 5 ? ` and ${running.length - 5} more` : "";
    throw new ConflictError(`${running.length} of the job(s) to remove ${running.length === 1 ? "is" : "are"} running: ${shown}${more}`, {
      hint: "stop them first with `balsam killjob --id ID`; `rm --force` removes the records while their processes run on",
    });
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
  async setState(idOrPrefix: string, to: JobState, message = "set by user", opts: { lease?: string } = {}): Promise<Job> {
    const job = await this.get(idOrPrefix);
    const lease = leaseHeld(job, opts.lease);
    const held = isActive(job.state) && job.lock !== null && job.lock.until > new Date();
    const ownProcess = held && lease !== undefined;
    if (isFinal(job.state) && RERUN_REQUESTS.includes(to)) {
      await this.rerun(job._id, { restart: to === "RESTART_READY", message: `${message} (${to})` });
      return this.get(job._id);
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
    if (!(await transitionJob(this.store, t))) throw new ConflictError(`job ${job._id} changed state while being modified; try again`);
    const updated = await this.get(job._id);
    if (isRunnable(to)) await this.queues.enqueue([queueItem(updated)]);
    if (isRunnable(job.state)) await this.queues.remove([queueItem(job)]);
    if (isFinal(to)) {
      // Told as a launcher tells it: a search waiting on results() hears of it, and children move on.
      await this.queues.publish(FINISHED_CHANNEL, JSON.stringify({ id: updated._id, workflow: updated.workflow, name: updated.name, state: to, result: updated.data?.result })).catch(() => undefined);
      if (updated.hasChildren) await this.releaseChildren([updated._id]);
    }
    return updated;
  }

  /**
   * Kills a job and, unless `recursive: false`, every job depending on it
   * (as Balsam 0.x's `dag.kill`): USER_KILLED. Jobs a launcher is running
   * are asked through Redis; the launcher stops the process and records the
   * kill. Without `recursive`, waiting children are FAILED instead (their
   * parent will never finish). Returns the ids killed.
   */
  async kill(idOrPrefix: string, opts: { recursive?: boolean } = {}): Promise<string[]> {
    const job = await this.get(idOrPrefix);
    const targets = [job, ...(opts.recursive !== false ? await descendantsOf(this.store, [job._id]) : [])].filter((j) => !isFinal(j.state));
    if (targets.length === 0) {
      if (isFinal(job.state)) throw new ConflictError(`job ${job._id} is already ${job.state}`);
      return [];
    }
    const now = new Date();
    const leased = targets.filter((j) => isActive(j.state));
    const free = targets.filter((j) => !isActive(j.state));
    const lost = await recordTransitions(
      this.store,
      free.map((j) => ({ id: j._id, from: j.state, path: [{ state: "USER_KILLED" as const, message: "killed by user" }], set: { lock: null } })),
    );
    const queued = free.filter((j) => isRunnable(j.state) && !lost.includes(j._id));
    await this.queues.remove(queued.map(queueItem));
    // A launcher may be running a queued job already, ahead of its claim (DESIGN §7): it stops the process on this.
    for (const j of queued) await this.queues.publish(KILL_CHANNEL, j._id);
    if (leased.length) {
      // Marked so a lease that lapses (dead launcher) ends in USER_KILLED, not a restart.
      for (const chunk of chunked(leased.map((j) => j._id), MAX_IN_IDS)) {
        await this.store.jobs.updateMany({ _id: { $in: chunk } }, { $set: { killRequestedAt: now } });
      }
      for (const j of leased) await this.queues.publish(KILL_CHANNEL, j._id);
    }
    const killed = targets.map((j) => j._id).filter((id) => !lost.includes(id));
    await this.failOrphans(killed);
    return killed;
  }

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
  async rerun(target: string | JobFilter, opts: ProgressOptions & { restart?: boolean; message?: string } = {}): Promise<RerunResult> {
    const fields = { _id: 1, name: 1, state: 1, parents: 1, workflow: 1, attempts: 1, numNodes: 1 } as const;
    let jobs: Job[];
    if (typeof target === "string") {
      const job = await this.get(target);
      if (!isFinal(job.state)) {
        throw new ConflictError(`job ${job._id} is ${job.state}; only FAILED, USER_KILLED or JOB_FINISHED jobs can be rerun`);
      }
      jobs = [job];
    } else {
      if (Object.keys(jobFilterQuery(target)).length === 0) throw new UsageError("rerun needs a selector (name, id, workflow or state)");
      const states = target.state === undefined ? [...FINAL_STATES] : [target.state].flat();
      const notFinal = states.find((st) => !isFinal(st));
      if (notFinal) throw new UsageError(`only FAILED, USER_KILLED or JOB_FINISHED jobs can be rerun, not ${notFinal}`);
      jobs = await findJobs(this.store, { ...target, state: states }, { projection: fields });
    }
    const message = opts.message ?? "rerun by user";
    const chosen = new Set(jobs.map((j) => j._id));
    const outside = [...new Set(jobs.flatMap((j) => j.parents))].filter((p) => !chosen.has(p));
    const stateOf = new Map<string, JobState>();
    for (const chunk of chunked(outside, MAX_IN_IDS)) {
      for (const p of await this.store.jobs.find({ _id: { $in: chunk } }, { projection: { state: 1 } }).toArray()) stateOf.set(p._id, p.state);
    }
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
      const lost = new Set(await recordTransitions(this.store, chunk));
      for (const id of lost) skipped.push({ id, reason: "changed state meanwhile" });
      const written = chunk.map((t) => t.id).filter((id) => !lost.has(id));
      rearmed.push(...(await this.rearmChildren(written)));
      await this.queues.enqueue(written.flatMap((id) => enqueue.get(id) ?? []).map(queueItem));
      // A rerun job that finished before its children were re-armed releases them now.
      await this.releaseChildren(written);
      rerun.push(...written);
      opts.onProgress?.(rerun.length, ts.length);
    }
    return { rerun, rearmed, skipped, interrupted: rerun.length + skipped.length < jobs.length };
  }

  /** FAILED descendants that failed only because one of `parentIds` did: back to AWAITING_PARENTS. */
  private async rearmChildren(parentIds: readonly string[]): Promise<string[]> {
    const rearmed: string[] = [];
    let frontier = new Set(parentIds);
    while (frontier.size) {
      const kids: Job[] = [];
      for (const chunk of chunked([...frontier], MAX_IN_IDS)) {
        const found = await this.store.jobs
          .find({ parents: { $in: chunk }, state: "FAILED" }, { projection: { _id: 1, failedByParent: 1, stateHistory: 1 } })
          .toArray();
        kids.push(...found.filter((k) => frontier.has(failureCause(k) ?? "")));
      }
      const ts: Transition[] = kids.map((k) => ({
        id: k._id,
        from: "FAILED",
        path: [{ state: "AWAITING_PARENTS", message: `re-armed: parent ${failureCause(k)} is rerun` }],
        unset: ["failedByParent"],
      }));
      const lost = new Set(await recordTransitions(this.store, ts));
      const done = kids.map((k) => k._id).filter((id) => !lost.has(id));
      rearmed.push(...done);
      frontier = new Set(done);
    }
    return rearmed;
  }

  /** Adds PARENT → CHILD, refusing duplicates and cycles (see parents.ts). */
  addDependency(parentRef: string, childRef: string): Promise<{ parent: Job; child: Job }> {
    return addDependency(this, parentRef, childRef);
  }

  /**
   * Replaces a job's parents, as 0.x's `job.set_parents(parents)`: a job not
   * yet started waits for them or becomes runnable (see parents.ts).
   */
  setParents(childRef: string, parentRefs: readonly string[], opts: { lease?: string } = {}): Promise<Job> {
    return setParents(this, childRef, parentRefs, opts);
  }

  /**
   * Releases the children of finished jobs: a child whose parents have all
   * finished becomes READY and is enqueued; a child of a FAILED or killed
   * parent becomes FAILED. Returns how many children moved.
   */
  async releaseChildren(parentIds: readonly string[]): Promise<number> {
    if (parentIds.length === 0) return 0;
    const kids: Job[] = [];
    for (const chunk of chunked([...parentIds], MAX_IN_IDS)) {
      kids.push(...(await this.store.jobs.find({ parents: { $in: chunk }, state: "AWAITING_PARENTS" }).toArray()));
    }
    return this.settleWaiting(kids);
  }

  /**
   * Moves AWAITING_PARENTS jobs on by their parents' states as they are now
   * read: READY (and enqueued) when all finished, FAILED — and their own
   * children in turn — when one failed, was killed or is gone; the others
   * stay. Returns how many moved.
   */
  async settleWaiting(kids: readonly Job[]): Promise<number> {
    if (kids.length === 0) return 0;
    const allParents = [...new Set(kids.flatMap((k) => k.parents))];
    const parents: Array<Pick<Job, "_id" | "state">> = [];
    for (const chunk of chunked(allParents, MAX_IN_IDS)) {
      parents.push(...(await this.store.jobs.find({ _id: { $in: chunk } }, { projection: { state: 1 } }).toArray()));
    }
    const stateOf = new Map(parents.map((p) => [p._id, p.state]));
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
    const lost = new Set(await recordTransitions(this.store, ts, at));
    await this.queues.enqueue(ready.filter((k) => !lost.has(k._id)).map((k) => queueItem({ ...k, state: "READY", updatedAt: at })));
    const nowFailed = failed.filter((id) => !lost.has(id));
    // A failed child fails its own children in turn.
    const deeper = nowFailed.length ? await this.releaseChildren(nowFailed) : 0;
    return ts.length - lost.size + deeper;
  }

  /** Fails jobs waiting on the given (killed/failed) parents, transitively. */
  async failOrphans(parentIds: readonly string[]): Promise<number> {
    return this.releaseChildren(parentIds);
  }
}

/** How jobs are added. */
export interface AddJobOptions {
  /**
   * The job (id or unique prefix) that spawned them: their first history
   * line says "spawned by [name | id8]", as 0.x's `dag.spawn_child` wrote.
   */
  spawnedBy?: string;
}

/** What `jobs.rerun` did: the jobs rerun, the children re-armed, and those left as they were, with why. */
export interface RerunResult {
  /** Stopped by `signal` before every chosen job was rerun; the others are untouched. */
  interrupted: boolean;
  rerun: string[];
  rearmed: string[];
  skipped: Array<{ id: string; reason: string }>;
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

/** For operations over many jobs: stop between chunks when `signal` aborts, and hear the running count. */
export interface ProgressOptions {
  signal?: AbortSignal;
  /** After each chunk: how many jobs have been dealt with, of how many. */
  onProgress?: (done: number, total: number) => void;
}

function validateSpec(s: JobSpec, limits: JobLimits = {}): void {
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
