import type { Job } from "../models/index.js";

/**
 * The lease the caller holds on `job`: the one given, or — inside the job's
 * own process — the one its launcher handed it (`BALSAM_JOB_LEASE`); only
 * when it is the job's current lock owner.
 */
export function leaseHeld(job: Job, given: string | undefined): string | undefined {
  const lease = given ?? (process.env.BALSAM_JOB_ID === job._id ? process.env.BALSAM_JOB_LEASE : undefined);
  return lease && job.lock?.owner === lease ? lease : undefined;
}
