import type { Job, JobState } from "../models/index.js";
import { checkJobFilter, countByState, countByWorkflowState, countJobs, findJobs, type FindOptions, type JobFilter } from "../store/index.js";
import { deleteWhere } from "./remove.js";
import { updateWhere } from "./modify.js";
import type { JobsContext } from "./context.js";

/** A lazily-run query over jobs: `jobs.filter({ name: "task", workflow: "TEST" }).delete()`. */
export class JobQuery {
  constructor(
    private readonly ctx: JobsContext,
    readonly filter: JobFilter,
  ) {
    checkJobFilter(filter); // validates states up front
  }
  /** The matching jobs (unordered unless `opts.sort`), with `projection`/`limit`/`skip` as in MongoDB. */
  list(opts: FindOptions = {}): Promise<Job[]> {
    return findJobs(this.ctx.store, this.filter, opts);
  }
  /** How many jobs match. */
  count(): Promise<number> {
    return countJobs(this.ctx.store, this.filter);
  }
  /** Counts per state, in one aggregation. */
  byState(): Promise<Partial<Record<JobState, number>>> {
    return countByState(this.ctx.store, this.filter);
  }
  /** Counts per workflow and state, in one aggregation. */
  byWorkflowState(): Promise<Array<{ workflow: string; state: JobState; n: number }>> {
    return countByWorkflowState(this.ctx.store, this.filter);
  }
  /**
   * Deletes the matching jobs and their queue entries; returns how many were
   * deleted. Jobs a launcher is running are refused unless `evenIfRunning`.
   */
  delete(opts: { evenIfRunning?: boolean } = {}): Promise<number> {
    return deleteWhere(this.ctx, this.filter, opts);
  }
  /**
   * Sets plain fields (not `state`: use `jobs.setState`) on every matching
   * job; returns how many changed. Unlike `jobs.modify` it does not check
   * leases: use it for fields a launcher does not write (description, data.*).
   */
  update(set: Partial<Omit<Job, "_id" | "state" | "stateHistory">>): Promise<number> {
    return updateWhere(this.ctx, this.filter, set);
  }

}
