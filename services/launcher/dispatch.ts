import { gpuLimitProblem, isRunnable, jobFromSnapshot, type App, type Job } from "../../libs/models/index.js";
import { coerceError } from "../../libs/errors/index.js";
import { workdirFor } from "../../libs/client/index.js";
import type { Consumer, QueueEntry } from "../../libs/queue/index.js";
import { findApp } from "../../libs/store/index.js";
import { MINUTE, SECOND } from "./options.js";
import { planStart } from "./plan.js";
import { refusal, sizeOf } from "./prepare.js";
import { matching } from "./idle.js";
import { TagFilter } from "./tag-filter.js";
import type { Execution } from "./execution.js";
import type { LeaseKeeper } from "./leases.js";
import type { Core, Running, Taken } from "./core.js";

/**
 * From a queue entry to a started job: one BullMQ worker per consumed
 * workflow; each entry is checked against this launcher's time, nodes and
 * backlog, GPUs and tags (`--tag`), waits for capacity, and then runs ahead
 * of its claim or is claimed and started (execution.ts). An entry not taken
 * goes back, delayed.
 */
export class Dispatch {
  private readonly workers = new Map<string, Consumer>();
  private readonly apps = new Map<string, App>();
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

  /** Starts a worker on each consumed workflow that has none yet. */
  async refreshWorkers(): Promise<void> {
    const { core } = this;
    const o = core.o;
    if (!core.active()) return;
    const wanted = o.workflows ?? matching(o, await o.client.queues.workflows());
    for (const wf of wanted) {
      if (this.workers.has(wf)) continue;
      const w = o.client.queues.consume(wf, (entry) => this.process(entry), {
        concurrency: o.baseConcurrency,
        lockDurationMs: o.lockDurationMs,
        stalledIntervalMs: o.lockDurationMs,
        // A job whose launchers keep dying while it runs ahead of its claim is
        // failed as a job whose leases keep lapsing is (recoverLapsedLeases).
        maxStalledCount: Math.max(1, o.maxLeaseLapses - 1),
        drainDelaySeconds: 1,
        onError: (err) => core.log(`queue ${wf}: ${err.message}`),
        onLocksExtended: (ids, sentAt) => core.fence.locksExtended(ids, sentAt),
        onGivenUp: (id) => void this.givenUp.set(id, this.failStalled(id).catch((e: unknown) => core.log(`job ${id}: ${coerceError(e).message}`))),
      });
      this.workers.set(wf, w);
    }
  }

  /** Stops (true) or resumes fetching on every worker. */
  pause(pause: boolean): void {
    for (const w of this.workers.values()) {
      if (pause) void w.pause().catch(() => undefined);
      else w.resume();
    }
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

  private async appOf(name: string): Promise<App | undefined> {
    let app = this.apps.get(name);
    if (!app) {
      app = (await findApp(this.core.o.client.store, name)) ?? undefined;
      if (app) this.apps.set(name, app);
    }
    return app;
  }

  /**
   * The BullMQ processor. The entry's snapshot is the job as it was queued,
   * so nothing is read; a write that finds the job changed since (modified,
   * killed, taken) reads it afresh and decides again.
   */
  private async process(entry: QueueEntry): Promise<void> {
    this.lastActivity = Date.now();
    const id = entry.id;
    const read = (): Promise<Job | null> => this.execution.records.read(id);
    // An entry whose launcher was lost holding it is read afresh: that launcher may have claimed the job meanwhile.
    const givenUp = this.givenUp.get(id);
    if (givenUp) await givenUp;
    let job = entry.snapshot && !givenUp ? jobFromSnapshot(id, entry.snapshot) : await read();
    // Another launcher's job (its tags are not all ours): back to the queue, untouched (tag-filter.ts).
    if (job && isRunnable(job.state) && !this.tagFilter.accepts(job)) {
      await new Promise((r) => setTimeout(r, this.tagFilter.missPauseMs()));
      return entry.defer(this.tagFilter.delayMs);
    }
    for (let round = 0; job && isRunnable(job.state); round++) {
      if ((await this.take(entry, job)) === "done") return;
      // A job edited again and again while it starts: another delivery tries later.
      if (round >= 3) return entry.defer(SECOND);
      job = await read();
    }
  }

  /** Decide, wait for capacity, then run the job ahead of its claim, or claim it and start it. */
  private async take(entry: QueueEntry, job: Job): Promise<Taken> {
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
    const grant = await core.pool.acquire(size);
    if (!grant) return entry.defer(0);
    let started = false;
    try {
      await this.roomToWrite();
      if (!core.active()) return entry.defer(0);
      const pre = job.preprocess || app?.preprocess || "";
      const post = job.postprocess || app?.postprocess || "";
      const { steps, runAhead } = planStart(job, { appFound: app !== undefined, preprocess: pre, postprocess: post, claimAfterMs: o.claimAfterMs, owner: core.owner });
      if (app && runAhead) {
        started = true;
        this.setAhead(job.workflow, +1);
        try {
          const taken = await this.execution.runAhead(entry, job, app, grant, steps, workdir);
          return taken === "give-back" ? await entry.defer(0) : taken;
        } finally {
          this.setAhead(job.workflow, -1);
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

  /** Keeps `baseConcurrency` entries coming while some are held by jobs running ahead of their claims. */
  private setAhead(workflow: string, delta: number): void {
    const n = (this.ahead.get(workflow) ?? 0) + delta;
    this.ahead.set(workflow, n);
    this.workers.get(workflow)?.hold(n);
  }
}
