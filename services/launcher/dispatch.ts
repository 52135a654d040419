import { gpuLimitProblem, isRunnable, jobFromSnapshot, type App, type Job, type LaunchSnapshot } from "../../libs/models/index.js";
import { coerceError } from "../../libs/errors/index.js";
import { workdirFor } from "../../libs/client/index.js";
import type { Consumer, QueueEntry } from "../../libs/queue/index.js";
import { findApp } from "../../libs/store/index.js";
import { MINUTE, SECOND } from "./options.js";
import { planStart } from "./plan.js";
import { refusal, sizeOf } from "./prepare.js";
import { matching } from "./idle.js";
import { TagFilter } from "./tag-filter.js";
import { once, type Execution } from "./execution.js";
import type { AheadEntry } from "./fence.js";
import type { LeaseKeeper } from "./leases.js";
import type { Core, Running, Taken } from "./core.js";

/** What take() needs of the entry a job came in: its lock (the fence's), and giving the job back. */
interface Offer extends AheadEntry {
  /** Ends the take (throws): the job goes back to the queue, `ms` later. */
  defer(ms: number): Promise<never>;
  /** Ends the take (throws): the job goes back to the head of the queue, for a launcher with room. */
  giveBack(): Promise<never>;
  /** A chunk's job: told once the job waits for a slot no more (it got one, or was decided otherwise). */
  settled?: () => void;
}

/** Thrown by a chunk job's defer: the job is left for the chunk's next delivery. */
const LEFT = new Error("left in its chunk");

/**
 * From a queue entry to a started job: one BullMQ worker per consumed
 * workflow; each entry is checked against this launcher's time, nodes and
 * backlog, GPUs and tags (`--tag`), waits for capacity, and then runs ahead
 * of its claim or is claimed and started (execution.ts). An entry not taken
 * goes back, delayed.
 */
export class Dispatch {
  private readonly workers = new Map<string, Consumer>();
  private readonly apps = new Map<string, Promise<App | undefined>>();
  private readonly tagFilter: TagFilter;
  /**
   * Jobs whose entries BullMQ gave up on here, each with the write recording
   * it FAILED. Until that write lands the job looks runnable with no entry,
   * and the idle check's reconcile may offer it again: such an entry is read
   * afresh once the write is done, never run from its snapshot.
   */
  private readonly givenUp = new Map<string, Promise<void>>();
  /** Jobs running ahead of their claim, per workflow: each holds its worker's processor, so the worker's concurrency grows by as many. */
  private readonly ahead = new Map<string, number>();
  /** When the launcher last said the database was behind. */
  private behindSaid = 0;
  /** When the launcher last said it gave jobs back for want of a slot. */
  private starveSaid = 0;
  /** Why fetching is paused, if it is: the leases' fence, or jobs given back for want of a slot (starve). */
  private readonly pausedBy = new Set<"fence" | "slots">();
  lastActivity = Date.now();

  constructor(
    private readonly core: Core,
    private readonly execution: Execution,
    private readonly leases: LeaseKeeper,
  ) {
    this.tagFilter = new TagFilter(core.o.tags);
  }

  workflows(): string[] {
    return [...this.workers.keys()];
  }

  /** Every worker found its queue empty when it last looked: nothing is about to start. */
  drained(): boolean {
    for (const w of this.workers.values()) if (!w.drained()) return false;
    return true;
  }

  /** Starts a worker on each consumed workflow that has none yet. */
  async refreshWorkers(): Promise<void> {
    const { core } = this;
    const o = core.o;
    if (!core.active()) return;
    const wanted = o.workflows ?? matching(o, await o.client.queues.workflows());
    // Stopped while it asked (a time limit during start-up): a worker started now would never be closed.
    if (!core.active()) return;
    for (const wf of wanted) {
      if (this.workers.has(wf)) continue;
      const w = o.client.queues.consume(wf, (entry) => this.process(entry, wf), {
        concurrency: o.baseConcurrency,
        lockDurationMs: o.lockDurationMs,
        stalledIntervalMs: o.lockDurationMs,
        // A job whose launchers keep dying while it runs ahead of its claim is
        // failed as a job whose leases keep lapsing is (recoverLapsedLeases).
        maxStalledCount: Math.max(1, o.maxLeaseLapses - 1),
        drainDelaySeconds: 1,
        onError: (err) => core.log(`queue ${wf}: ${err.message}`),
        onLocksExtended: (ids, sentAt) => core.fence.locksExtended(ids, sentAt),
        onGivenUp: (ids) => {
          for (const id of ids) this.givenUp.set(id, this.failStalled(id).catch((e: unknown) => core.log(`job ${id}: ${coerceError(e).message}`)));
        },
      });
      this.workers.set(wf, w);
      if (this.pausedBy.size) void w.pause().catch(() => undefined);
    }
  }

  /** Stops (true) or resumes fetching on every worker, for the leases' fence. */
  pause(pause: boolean): void {
    this.pauseFor("fence", pause);
  }

  /** Fetching stops while any reason holds, and resumes when none does. */
  private pauseFor(reason: "fence" | "slots", on: boolean): void {
    const was = this.pausedBy.size > 0;
    if (on) this.pausedBy.add(reason);
    else this.pausedBy.delete(reason);
    const now = this.pausedBy.size > 0;
    if (was === now) return;
    for (const w of this.workers.values()) {
      if (now) void w.pause().catch(() => undefined);
      else w.resume();
    }
  }

  /**
   * A job gave up waiting for a slot here: fetch nothing more until one
   * frees, or this launcher would take the entries it gave back straight
   * back (they are at the head of the queue, and its workers have room in
   * hand) instead of leaving them to a launcher with a free slot.
   */
  private starve(): void {
    if (this.pausedBy.has("slots")) return;
    const now = Date.now();
    if (now - this.starveSaid >= MINUTE) {
      this.starveSaid = now;
      this.core.log(`jobs waited ${this.core.o.slotWaitMs / SECOND} s for a slot here: given back to the head of the queue for a launcher with room; fetching nothing until a slot frees`);
    }
    this.pauseFor("slots", true);
    void this.core.pool.released().then(() => this.pauseFor("slots", false));
  }

  /** Workers close after their processors return: waiters got null from the pool and gave their entries back. */
  async close(): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => w.close().catch(() => undefined)));
  }

  /** A job whose queue entry BullMQ gave up on: its launchers died while they ran it, maxLeaseLapses times. */
  private async failStalled(id: string): Promise<void> {
    const job = await this.execution.records.read(id);
    if (!job || !isRunnable(job.state)) return;
    const n = this.core.o.maxLeaseLapses;
    await this.execution.records.failUnclaimed(job, `its launcher was lost ${n} times while running it (maxLeaseLapses ${n}): not restarted; the job's output file may say why`);
  }

  /** The app, read once: a chunk's jobs ask side by side, and one read answers them all. */
  private appOf(name: string): Promise<App | undefined> {
    let app = this.apps.get(name);
    if (!app) {
      app = findApp(this.core.o.client.store, name).then((a) => a ?? undefined);
      this.apps.set(name, app);
      // Not found (yet), or the read failed: asked again next time.
      void app.then((a) => a ?? this.apps.delete(name), () => this.apps.delete(name));
    }
    return app;
  }

  /**
   * The BullMQ processor. The entry's snapshot is the job as it was queued,
   * so nothing is read; a write that finds the job changed since (modified,
   * killed, taken) reads it afresh and decides again.
   */
  private async process(entry: QueueEntry, workflow: string): Promise<void> {
    this.lastActivity = Date.now();
    if (entry.chunk) return this.processChunk(entry, entry.chunk, workflow);
    const id = entry.id;
    // An entry whose launcher was lost holding it is read afresh: that launcher may have claimed the job meanwhile.
    const givenUp = this.givenUp.get(id);
    if (givenUp) await givenUp;
    const job = entry.snapshot && !givenUp ? jobFromSnapshot(id, entry.snapshot) : await this.execution.records.read(id);
    // Another launcher's job (its tags are not all ours): back to the queue, untouched (tag-filter.ts).
    if (job && isRunnable(job.state) && !this.tagFilter.accepts(job)) {
      await new Promise((r) => setTimeout(r, this.tagFilter.missPauseMs()));
      return entry.defer(this.tagFilter.delayMs);
    }
    if (job) await this.takeRounds(entry, job);
  }

  /** Takes a job; one changed meanwhile is read again and taken as it now is, while it is still this entry's (runnable, same attempt). */
  private async takeRounds(offer: Offer, first: Job): Promise<void> {
    let job: Job | null = first;
    for (let round = 0; job && isRunnable(job.state) && job.attempts === first.attempts; round++) {
      if ((await this.take(offer, job)) === "done") return;
      // A job edited again and again while it starts: another delivery tries later.
      if (round >= 3) return offer.defer(SECOND);
      job = await this.execution.records.read(first._id);
    }
  }

  /**
   * A chunk's entry (jobs added together: libs/client/add.ts). Its jobs'
   * snapshots were kept beside it when it was made; one killed, modified,
   * restarted or deleted while the chunk waited lost its snapshot then and
   * is read afresh, as are all of them on any later delivery, so each is
   * seen as it now is. Each is taken as an entry of its own would be, side by side, all
   * under the chunk's lock (the fence keys each job to it). A job that
   * cannot be taken now (time left, size, stopping) is left: once the
   * others are done or claimed the chunk goes back, delayed, and whoever
   * takes it next reads which of its jobs are still runnable.
   */
  private async processChunk(entry: QueueEntry, ids: readonly string[], workflow: string): Promise<void> {
    // Chunks hold untagged jobs only (add.ts): a tagged launcher runs none of them, and reads nothing to know it.
    if (this.tagFilter.active) {
      // Not left in Redis: the launcher that takes the chunk next reads its jobs (its delivery is not the first).
      if (entry.first) await this.takeSnapshots(workflow, entry.entryId);
      await new Promise((r) => setTimeout(r, this.tagFilter.missPauseMs()));
      return entry.defer(this.tagFilter.delayMs);
    }
    const all = [...new Set(ids)];
    await Promise.all(all.map((id) => this.givenUp.get(id)));
    let back: number | undefined;
    let late = false;
    const offer = (settled: () => void): Offer => ({
      entryId: entry.entryId,
      fetchedAt: entry.fetchedAt,
      settled,
      defer: (ms) => {
        back = Math.min(back ?? ms, ms);
        return Promise.reject(LEFT);
      },
      giveBack: () => {
        late = true;
        return Promise.reject(LEFT);
      },
    });
    const jobs = await this.chunkJobs(entry, all, workflow);
    await this.takeChunk(jobs, offer, workflow);
    // A job set runnable again while the chunk was in hand was offered through this entry, which stood: read once more before it ends.
    const found = new Set(jobs.map((j) => j._id));
    const skipped = all.filter((id) => !found.has(id));
    if (skipped.length) await this.takeChunk(await this.execution.records.readChunk(entry.entryId, skipped), offer, workflow);
    // A job left for want of a slot: the chunk goes to the head of the queue, where a launcher with room takes it now.
    if (late) return entry.giveBack();
    if (back !== undefined) return entry.defer(back);
  }

  /**
   * A chunk's jobs to take, in the order they were added: on its first
   * delivery from the snapshots kept with it (those still there: a job
   * changed since lost its own), the rest read afresh.
   */
  private async chunkJobs(entry: QueueEntry, all: readonly string[], workflow: string): Promise<Job[]> {
    const records = this.execution.records;
    const snaps = await this.takeSnapshots(workflow, entry.entryId);
    if (!entry.first) return records.readChunk(entry.entryId, all);
    const fromSnap = new Map<string, Job>();
    for (const id of all) {
      const s = snaps.get(id);
      // A job whose entry BullMQ gave up on here may have been claimed meanwhile: read.
      if (s && s.attempts === 0 && isRunnable(s.state) && !this.givenUp.has(id)) fromSnap.set(id, jobFromSnapshot(id, s));
    }
    if (fromSnap.size === all.length) return [...fromSnap.values()];
    const read = new Map((await records.readChunk(entry.entryId, all.filter((id) => !fromSnap.has(id)))).map((j) => [j._id, j]));
    return all.flatMap((id) => fromSnap.get(id) ?? read.get(id) ?? []);
  }

  /** A chunk's snapshots, taken out by whoever gets the chunk first (only that delivery may use them); none when Redis fails to say. */
  private takeSnapshots(workflow: string, chunk: string): Promise<Map<string, LaunchSnapshot>> {
    return this.core.o.client.queues.takeSnapshots(workflow, chunk).catch(() => new Map<string, LaunchSnapshot>());
  }

  /**
   * The chunk's jobs side by side. Entries in hand are counted by the jobs
   * that wait in them for a slot (setAhead): this entry counts one, less one
   * for each job still waiting, so a launcher holds about `baseConcurrency`
   * waiting jobs whether they came alone or in chunks, never a chunk's worth
   * per slot.
   */
  private async takeChunk(jobs: readonly Job[], offer: (settled: () => void) => Offer, workflow: string): Promise<void> {
    let hold = 1 - jobs.length;
    this.setAhead(workflow, hold);
    try {
      // All settled before an error ends the entry: its other jobs may be running ahead under its lock.
      const ends = await Promise.allSettled(
        jobs.map(async (job) => {
          const settled = once(() => {
            hold++;
            this.setAhead(workflow, +1);
            this.workers.get(workflow)?.wake();
          });
          try {
            await this.takeRounds(offer(settled), job);
          } catch (err) {
            if (err !== LEFT) throw err;
          } finally {
            settled();
          }
        }),
      );
      for (const e of ends) if (e.status === "rejected") throw e.reason;
    } finally {
      this.setAhead(workflow, -hold);
    }
  }

  /** Decide, wait for capacity, then run the job ahead of its claim, or claim it and start it. */
  private async take(entry: Offer, job: Job): Promise<Taken> {
    const { core } = this;
    const o = core.o;
    const id = job._id;
    if (!core.active()) return entry.defer(0);
    // Fenced (its leases could not be renewed): no new work until they can.
    if (!this.leases.canTake()) return entry.defer(0);
    // An earlier attempt still winding down here (its script restarted the job): never two at once.
    if (core.running.has(id)) return entry.defer(SECOND);
    const left = core.minutesLeft();
    if (job.wallTimeMinutes > left) {
      core.log(`job ${id} needs ${job.wallTimeMinutes} min, ${left.toFixed(1)} min left: left in the queue for the next launcher`);
      return entry.defer(Math.max(1000, left * MINUTE));
    }
    const size = sizeOf(o, job);
    // More GPUs than the site's nodes have: no launcher can ever run it.
    const beyond = gpuLimitProblem(job, o.maxGpusPerNode);
    if (beyond) {
      await this.execution.records.failUnclaimed(job, beyond);
      return "done";
    }
    const refused = refusal(o, core.pool, job, size);
    if (refused) {
      core.log(`job ${id} needs ${refused}`);
      return entry.defer(30 * SECOND);
    }
    let workdir: string;
    try {
      workdir = job.workdir || workdirFor(o.dbPath, job);
    } catch (err) {
      // Nothing runs without a working directory, and a restart would fail the same way.
      await this.execution.records.failUnclaimed(job, `cannot make the working directory: ${coerceError(err).message}`);
      return "done";
    }
    const app = await this.appOf(job.application);
    // While this launcher starves, an entry its fetch already had under way goes back unless a slot is free now.
    const grant = await core.pool.acquireWithin(size, this.pausedBy.has("slots") ? 0 : o.slotWaitMs);
    entry.settled?.();
    if (grant === undefined) {
      // Its slot is long in coming: another launcher may have one free now.
      this.starve();
      return entry.giveBack();
    }
    if (!grant) return entry.defer(0);
    let started = false;
    try {
      // Killed while it waited for this slot (read before the kill): read again, so nothing of it starts.
      if (core.killsHeard.delete(id)) return "changed";
      await this.roomToWrite();
      if (!core.active()) return entry.defer(0);
      const pre = job.preprocess || app?.preprocess || "";
      const post = job.postprocess || app?.postprocess || "";
      const { steps, runAhead } = planStart(job, { appFound: app !== undefined, preprocess: pre, postprocess: post, claimAfterMs: o.claimAfterMs, owner: core.owner });
      if (app && runAhead) {
        started = true;
        // A chunk's job settled its count already: its entry is in hand once, however many of its jobs run.
        const alone = entry.settled === undefined;
        if (alone) this.setAhead(job.workflow, +1);
        try {
          const taken = await this.execution.runAhead(entry, job, app, grant, steps, workdir);
          return taken === "give-back" ? await entry.defer(0) : taken;
        } finally {
          if (alone) this.setAhead(job.workflow, -1);
        }
      }
      if (!(await core.writer.write(this.execution.records.claim(job, job.updatedAt, steps, workdir)))) return "changed";
      core.fence.claimed(id);
      started = true;
      const r: Running = { job: { ...job, workdir, state: steps[steps.length - 1]!.state }, killed: false, timedOut: false, claimed: true };
      core.running.set(id, r);
      core.track(this.execution.runClaimed(r, app, grant, pre), id);
      return "done";
    } finally {
      if (!started) grant.release();
    }
  }

  /**
   * Jobs that end faster than the database records them would pile up here,
   * finished and unrecorded: past a bulk's worth of waiting writes, a slot
   * that is free waits for the database before it starts another job.
   * Holding the slot while waiting keeps the rest of the processors in the
   * pool's queue, so at most one job per slot starts past the limit.
   */
  private async roomToWrite(): Promise<void> {
    const { writer, o } = this.core;
    if (writer.backlog < o.writeBacklog) return;
    this.sayBehind(writer.backlog);
    await writer.room(o.writeBacklog);
  }

  /** Said when the backlog is reached, by a write or a slot that waits; at most once a minute. */
  sayBehind(backlog: number): void {
    const now = Date.now();
    if (now - this.behindSaid < MINUTE) return;
    this.behindSaid = now;
    this.core.log(`the database is behind: ${backlog} state writes wait for it; no new job starts until it catches up`);
  }

  /** Keeps `baseConcurrency` entries coming while some are held by jobs running ahead of their claims; a chunk's jobs waiting for slots count against it (takeChunk). */
  private setAhead(workflow: string, delta: number): void {
    const n = (this.ahead.get(workflow) ?? 0) + delta;
    this.ahead.set(workflow, n);
    this.workers.get(workflow)?.hold(n);
  }
}
