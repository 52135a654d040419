import { isActive, type Job } from "../models/index.js";

/**
 * The lease the caller holds on `job`: the one given, or — inside the job's
 * own process — the one its launcher handed it (`BALSAM_JOB_LEASE`); only
 * when it is the job's current lock owner.
 */
export function leaseHeld(job: Job, given: string | undefined): string | undefined {
  const lease = given ?? (process.env.BALSAM_JOB_ID === job._id ? process.env.BALSAM_JOB_LEASE : undefined);
  return lease && job.lock?.owner === lease ? lease : undefined;
}

/**
 * Whether a launcher holds `job` now: an active state under a lease that has
 * not ended by `now`, the database server's time (store's serverTime), the
 * clock launchers compute their leases from and recovery judges them by
 * (DESIGN §6.2). A login node's clock off by minutes would otherwise let a
 * user edit or delete a running job, or refuse one whose launcher is gone.
 */
export function leaseLive(job: Pick<Job, "state" | "lock">, now: Date): boolean {
  return isActive(job.state) && job.lock !== null && job.lock !== undefined && job.lock.until > now;
}
