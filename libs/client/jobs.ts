import type { Job, JobLimits, JobSpec, JobState } from "../models/index.js";
import { childrenOf, dependentsOf, getJob, listWorkflows, resolveWorkflows, type JobFilter, type Store } from "../store/index.js";
import type { JobQueues } from "../queue/index.js";
import { queueItem } from "./queue-item.js";
import { addDependency, setParents } from "./parents.js";
import { addChunks, addMany, type AddJobOptions } from "./add.js";
import { deleteJobs, deleteWhere, kill, refuseRunning, type DeleteVictim } from "./remove.js";
import { modify, setState } from "./modify.js";
import { rerun, type RerunResult } from "./rerun.js";
import { releaseChildren, settleWaiting } from "./release.js";
import { JobQuery } from "./query.js";
import type { JobsContext, ProgressOptions } from "./context.js";

export { FINISHED_CHANNEL, KILL_CHANNEL } from "../queue/index.js";
export type { AddJobOptions, DeleteVictim, JobFilter, ProgressOptions, RerunResult };
export { JobQuery, queueItem };

/**
 * The jobs API, as search algorithms and scripts use it: a thin facade over
 * the free operations (add.ts, query.ts, modify.ts, remove.ts, rerun.ts,
 * release.ts, parents.ts), which the launcher, the service and recovery
 * call directly.
 */
export class JobsApi implements JobsContext {
  constructor(
    readonly store: Store,
    readonly queues: JobQueues,
    readonly limits: JobLimits = {},
  ) {}

  /** Adds one job; its app must exist and its workflow must be usable as a queue name. */
  async add(spec: JobSpec, opts: AddJobOptions = {}): Promise<Job> {
    const [job] = await addMany(this, [spec], opts);
    return job as Job;
  }

  /** Adds many jobs, all or nothing (see add.ts). */
  addMany(specs: readonly JobSpec[], opts: AddJobOptions = {}): Promise<Job[]> {
    return addMany(this, specs, opts);
  }

  /** Adds jobs chunk by chunk, all or nothing (see add.ts); returns how many. */
  addChunks(chunks: Iterable<readonly JobSpec[]>, onAdded?: (added: number) => void): Promise<number> {
    return addChunks(this, chunks, onAdded);
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

  /** Sets plain fields of one job (see modify.ts). */
  modify(idOrPrefix: string, set: Partial<Omit<Job, "_id" | "state" | "stateHistory" | "workflow">>, opts: { lease?: string } = {}): Promise<Job> {
    return modify(this, idOrPrefix, set, opts);
  }

  /** Deletes matching jobs and their queue entries (see remove.ts). */
  deleteWhere(f: JobFilter, opts: { evenIfRunning?: boolean } = {}): Promise<number> {
    return deleteWhere(this, f, opts);
  }

  /** Deletes the given jobs and their queue entries, a chunk at a time (see remove.ts). */
  deleteJobs(victims: ReadonlyArray<DeleteVictim>, opts: ProgressOptions & { evenIfRunning?: boolean } = {}): Promise<number> {
    return deleteJobs(this, victims, opts);
  }

  /** Refuses to delete jobs a launcher is running (see remove.ts). */
  refuseRunning(victims: ReadonlyArray<Pick<Job, "_id" | "name" | "state" | "lock">>): Promise<void> {
    return refuseRunning(this, victims);
  }

  /** Moves a job to `to` through the transition table (see modify.ts). */
  setState(idOrPrefix: string, to: JobState, message = "set by user", opts: { lease?: string } = {}): Promise<Job> {
    return setState(this, idOrPrefix, to, message, opts);
  }

  /** Kills a job and, unless `recursive: false`, its dependents (see remove.ts). */
  kill(idOrPrefix: string, opts: { recursive?: boolean } = {}): Promise<string[]> {
    return kill(this, idOrPrefix, opts);
  }

  /** Runs final jobs again (see rerun.ts). */
  rerun(target: string | JobFilter, opts: ProgressOptions & { restart?: boolean; message?: string } = {}): Promise<RerunResult> {
    return rerun(this, target, opts);
  }

  /** Adds PARENT → CHILD, refusing duplicates and cycles (see parents.ts). */
  addDependency(parentRef: string, childRef: string): Promise<{ parent: Job; child: Job }> {
    return addDependency(this, parentRef, childRef);
  }

  /** Replaces a job's parents, as 0.x's `job.set_parents(parents)` (see parents.ts). */
  setParents(childRef: string, parentRefs: readonly string[], opts: { lease?: string } = {}): Promise<Job> {
    return setParents(this, childRef, parentRefs, opts);
  }

  /** Releases the children of finished jobs (see release.ts); returns how many moved. */
  releaseChildren(parentIds: readonly string[]): Promise<number> {
    return releaseChildren(this, parentIds);
  }

  /** Moves AWAITING_PARENTS jobs on by their parents' states (see release.ts). */
  settleWaiting(kids: readonly Job[]): Promise<number> {
    return settleWaiting(this, kids);
  }

  /** Fails jobs waiting on the given (killed/failed) parents, transitively. */
  failOrphans(parentIds: readonly string[]): Promise<number> {
    return releaseChildren(this, parentIds);
  }
}
