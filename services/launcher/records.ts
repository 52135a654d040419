import { ACTIVE_STATES, isFinal, isRunnable, sameLaunch, type Job, type JobState } from "../../libs/models/index.js";
import { coerceError } from "../../libs/errors/index.js";
import { readJob, runnableOfChunk, type Transition } from "../../libs/store/index.js";
import { isTransient } from "./writer.js";
import type { Core, Running, Taken } from "./core.js";
import type { Step } from "./plan.js";

/**
 * The launcher's writes for the jobs it runs: each conditioned on what lets
 * it write (the lease it holds, the version the queue entry carried, or no
 * lease when the job's own script took it over), with the job's state in
 * memory following each write that lands.
 */
export class JobRecords {
  constructor(private readonly core: Core) {}

  read(id: string): Promise<Job | null> {
    return readJob(this.core.o.client.store, id);
  }

  /** The jobs among `ids` that its chunk's entry still offers (runnable, never restarted), as they are now. */
  readChunk(chunk: string, ids: readonly string[]): Promise<Job[]> {
    return runnableOfChunk(this.core.o.client.store, chunk, ids);
  }

  /** The claim of a queued job: its steps to RUNNING (or STAGED_IN), a lease, its working directory; conditioned on the version it was queued with. */
  claim(job: Job, version: Date | undefined, steps: Step[], workdir: string): Transition {
    return { id: job._id, from: job.state, version, path: steps, set: { lock: { owner: this.core.owner, until: this.core.fence.leaseUntil(job._id) }, workdir } };
  }

  /** Records a job that runs ahead of its claim as RUNNING under a lease. */
  async claimAhead(r: Running, steps: Step[]): Promise<"claimed" | "fenced" | Taken> {
    const queued = r.job.state;
    for (let attempt = 0; attempt < 3; attempt++) {
      // Its entry's lock may have lapsed (frozen launcher): it may be another's now, so nothing is written.
      if (this.core.fence.lapsed(r.job._id)) return "fenced";
      if (await this.core.writer.write(this.claim({ ...r.job, state: queued }, r.version, steps, r.job.workdir))) {
        this.core.fence.claimed(r.job._id);
        r.claimed = true;
        r.job.state = "RUNNING";
        return "claimed";
      }
      const verdict = await this.sameAsQueued(r, r.job);
      if (verdict !== "same") return verdict;
    }
    return "done";
  }

  /**
   * After a write conditioned on the queued version missed: "same" when the
   * job would still run the same way (only its version moved, e.g. a child
   * was added to it), with `r` now on the fresh version; "changed" when it
   * is runnable but edited (run it again, as it now is); "done" when it is
   * gone, killed or taken.
   */
  async sameAsQueued(r: Running, queued: Job): Promise<"same" | Taken> {
    const fresh = await this.read(queued._id);
    if (!fresh || fresh.state !== queued.state || fresh.attempts !== queued.attempts) return "done";
    if (!sameLaunch(fresh, { ...queued, workdir: fresh.workdir })) return "changed";
    r.version = fresh.updatedAt;
    r.job.hasChildren = fresh.hasChildren;
    return "same";
  }

  /** A write for a job this launcher runs; the job's state in memory follows it, for the catch-all in `failUnexpected`. */
  async advance(r: Running, t: Transition): Promise<boolean> {
    const ok = await this.core.writer.write(r.released ? { ...t, owner: null } : r.claimed ? { ...t, owner: this.core.owner } : { ...t, version: r.version });
    if (ok) r.job.state = t.path[t.path.length - 1]!.state;
    return ok;
  }

  /** The last write for a job on this launcher, from its state in memory: it drops the lease. */
  async finish(r: Running, path: Step[], set: Record<string, unknown>, result?: unknown): Promise<boolean> {
    const last = path[path.length - 1]!.state;
    const t: Transition = { id: r.job._id, from: r.job.state, path, set: { ...set, lock: null } as Partial<Job> };
    if (last === "RESTART_READY") t.inc = { attempts: 1 };
    if (!(await this.advance(r, t))) {
      // Unclaimed, a miss is the caller's to sort out (DESIGN §7).
      if (r.claimed) this.lostLease(r);
      return false;
    }
    await this.core.completion.ended(r.job, last, result);
    return true;
  }

  /** A job refused before it was claimed: recorded FAILED from its runnable state, no lease involved. */
  async failUnclaimed(job: Job, message: string): Promise<void> {
    this.core.log(`job ${job._id}: ${message}`);
    if (await this.core.writer.write({ id: job._id, from: job.state, path: [{ state: "FAILED", message }] })) await this.core.completion.ended(job, "FAILED");
  }

  lostLease(r: Running): void {
    if (this.core.fence.lapsed(r.job._id)) this.core.log(`job ${r.job._id}: fenced, and no longer this launcher's (recovered elsewhere meanwhile): writing nothing for it`);
    else this.core.log(`job ${r.job._id}: lease lost (state changed elsewhere); dropping it`);
  }

  /**
   * The job as its own script left it: 0.x reads the row again after every
   * script (transitions.py:498-512). Still under this launcher's lease in
   * `expected`: the script set no state. No lease and an active state: the
   * script set it (its write drops the lease, DESIGN invariant 3), and
   * `r.released` says the launcher carries on from it with writes
   * conditioned on no lease. Undefined: nothing left for this launcher —
   * gone, final, queued again by the script, or in another launcher's hands.
   */
  async afterScript(r: Running, expected: JobState): Promise<Job | undefined> {
    const now = await this.read(r.job._id);
    if (now && now.lock?.owner === this.core.owner && now.state === expected) return now;
    if (!now || now.lock !== null || !ACTIVE_STATES.includes(now.state)) {
      if (now?.lock) this.lostLease(r);
      return undefined;
    }
    r.released = true;
    r.job.state = now.state;
    return now;
  }

  /**
   * Whatever went wrong outside the handled paths: recorded FAILED with the
   * error, not left leased — a lapsed lease would restart the job into the
   * same error, for ever. A MongoDB outage that outlasted the writer's
   * retries is the exception: the job did nothing wrong, so its lease is
   * left to lapse and recovery restarts it (at most maxLeaseLapses times).
   */
  async failUnexpected(r: Running, err: unknown): Promise<void> {
    const msg = coerceError(err).message;
    this.core.log(`job ${r.job._id}: ${msg}`);
    if (isFinal(r.job.state) || isRunnable(r.job.state) || isTransient(err)) return;
    try {
      await this.finish(r, [{ state: "FAILED", message: `launcher error in ${r.job.state}: ${msg}` }], {});
    } catch (again) {
      this.core.log(`job ${r.job._id}: could not record the failure (${coerceError(again).message}); its lease will lapse`);
    }
  }
}
