import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { join } from "node:path";
import { mkdirSync, appendFileSync } from "node:fs";
import { quote as shellQuote } from "shell-quote";
import {
  ACTIVE_STATES,
  RUNNABLE_STATES,
  WAITING_STATES,
  isFinal,
  isRunnable,
  gpuLimitProblem,
  jobFromSnapshot,
  jobOutFileName,
  sameLaunch,
  splitCommandLine,
  type App,
  type Job,
  type JobState,
  type Tags,
} from "../../libs/models/index.js";
import { coerceError } from "../../libs/errors/index.js";
import { DEFAULT_MAX_LEASE_LAPSES, redactUrl } from "../../libs/config/index.js";
import {
  FINISHED_CHANNEL,
  KILL_CHANNEL,
  queueItem,
  recoverLapsedLeases,
  reenqueueRunnable,
  workdirFor,
  type Balsam,
} from "../../libs/client/index.js";
import type { Transition } from "../../libs/store/index.js";
import { DelayedError, WORKFLOWS_CHANNEL, failedAsStalled, type BullJob, type Worker, type QueueData } from "../../libs/queue/index.js";
import { buildMpiCommand, gpuEnv, mpiGpuBinding, nodeGpuIds, type GpuVendor, type MpiKind, type NodeInfo } from "../../libs/platform/index.js";
import { NodePool, demandOf, gpuFitFilter, sameDemand, type Demand, type Grant } from "./pool.js";
import { TransitionWriter, isTransient } from "./writer.js";
import { ProcessSupervisor, findOnPath, readResult, outputTail, type RunHandle, type RunOutcome } from "./runner.js";
import { stageIn, stageOut } from "./stage.js";
import { Fence } from "./fence.js";
import { TagFilter } from "./tag-filter.js";

export interface LauncherOptions {
  client: Balsam;
  /** Database directory: working directories live under its data/. */
  dbPath: string;
  jobMode: "serial" | "mpi";
  /** Workflows to consume; undefined = all, discovering new ones as they appear. */
  workflows?: string[];
  /**
   * With `workflows` undefined: consume only workflows whose name contains
   * one of these parts (0.x's `--wf-filter`, `workflow__contains`),
   * discovering new ones as they appear.
   */
  workflowParts?: string[];
  nodes: NodeInfo[];
  /** Minutes until this launcher must stop; undefined = no limit. */
  timeLimitMinutes?: number;
  /** Keep running when there is nothing left to do. */
  persistent?: boolean;
  /** Lease length; renewed every third of it. Default 180 000. */
  leaseTtlMs?: number;
  /** Time between SIGTERM and SIGKILL when stopping a job. Default 5000. */
  killGraceMs?: number;
  /** MPI implementation for mpi mode. */
  mpiKind?: MpiKind;
  /** Which variable hands a job its GPUs (libs/platform/gpus.ts). Default nvidia. */
  gpuVendor?: GpuVendor;
  /** The site's GPUs per node (settings `gpusPerNode`): a job needing more is failed, not left for another launcher. */
  maxGpusPerNode?: number;
  /** How often an idle launcher checks whether anything is left. Default 500. */
  idleCheckMs?: number;
  /** The lease lapse that reaches this count fails a job instead of restarting it. Default DEFAULT_MAX_LEASE_LAPSES. */
  maxLeaseLapses?: number;
  /**
   * How long a job may run before it is recorded RUNNING under a lease; one
   * that ends sooner is recorded in one write. 0 claims every job before it
   * starts. Default 1000; at most a third of the queue entry's lock.
   */
  claimAfterMs?: number;
  /**
   * State writes that may wait for the database before the launcher starts
   * no new job. Default 500: one bulk's worth.
   */
  writeBacklog?: number;
  log?: (line: string) => void;
  /** Run only jobs carrying all these tags (`--tag`); others stay in the queue for other launchers (tag-filter.ts). */
  tags?: Tags;
}

const PREPROCESS_LIMIT_MS = 300_000;
/** 0.x's launcher: a run failing within this is a flaky start, worth a retry (job option fastFailRetries). */
const FAST_FAIL_SECONDS = 20;
const FAST_FAIL_MESSAGE = "failed fast: retry";
const SECOND = 1000;
const MINUTE = 60 * SECOND;

interface Running {
  job: Job;
  handle?: RunHandle;
  killed: boolean;
  timedOut: boolean;
  /**
   * False while the job runs ahead of its claim (DESIGN §7): it has no lease
   * yet; its queue entry, still locked by this launcher's worker, keeps
   * every other launcher off it, and its writes are conditioned on
   * `version` (the `updatedAt` it was queued with) instead of the lease.
   */
  claimed: boolean;
  version?: Date;
  /**
   * The job's own script set its state, which dropped the lease (DESIGN
   * invariant 3), into a state this launcher carries on from: its writes are
   * conditioned on the job having no lease.
   */
  released?: boolean;
}

/** What became of a queue entry's job: handled (run, or nothing to do), or changed since it was queued and to be read again. */
type Taken = "done" | "changed";

export interface LauncherSummary {
  finished: number;
  failed: number;
  restarted: number;
  killed: number;
  reason: string;
}

/**
 * A launcher: pulls runnable jobs from its workflows' queues, takes a lease
 * on each in MongoDB, runs it, and records every transition. Redis entries are
 * completed once the lease is taken; from then on the lease is what protects
 * the job (DESIGN §5–6).
 */
export class Launcher {
  readonly owner: string;
  private readonly o: Required<Omit<LauncherOptions, "workflows" | "timeLimitMinutes" | "mpiKind" | "maxGpusPerNode" | "tags">> & Pick<LauncherOptions, "workflows" | "timeLimitMinutes" | "mpiKind" | "maxGpusPerNode" | "tags">;
  private readonly tagFilter: TagFilter;
  private readonly pool: NodePool;
  private readonly writer: TransitionWriter;
  private readonly workers = new Map<string, Worker<QueueData>>();
  private readonly running = new Map<string, Running>();
  private readonly tasks = new Set<Promise<void>>();
  private readonly apps = new Map<string, App>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly startedAt = Date.now();
  private readonly deadline: number | undefined;
  private state: "created" | "running" | "stopping" | "stopped" = "created";
  private stopReason = "";
  private stopResolve: (() => void) | undefined;
  private unsubscribeKill: (() => Promise<void>) | undefined;
  private unsubscribeWorkflows: (() => Promise<void>) | undefined;
  private supervisor: ProcessSupervisor | undefined;
  private releaseBuffer: string[] = [];
  private announcements: Array<{ id: string; workflow: string; name: string; state: JobState; result?: unknown }> = [];
  private announceTimer: NodeJS.Timeout | undefined;
  private releaseTimer: NodeJS.Timeout | undefined;
  private lastActivity = Date.now();
  /** When the launcher last said the database was behind. */
  private behindSaid = 0;
  private reconciledAt = 0;
  private nextStoreCheck = 0;
  private readonly summary: LauncherSummary = { finished: 0, failed: 0, restarted: 0, killed: 0, reason: "" };
  /** Jobs running ahead of their claim, per workflow: each holds its worker's processor, so the worker's concurrency grows by as many. */
  private readonly ahead = new Map<string, number>();
  private readonly baseConcurrency: number;
  private readonly lockDurationMs: number;
  private readonly claimAfterMs: number;
  private readonly cpuAtStart = process.cpuUsage();
  /** Packed jobs started per host so far: cores go round robin. */
  private readonly turns = new Map<string, number>();
  private readonly taskset = findOnPath("taskset");
  private readonly fence: Fence;
  /** Workers paused because the launcher fenced itself. */
  private fencePaused = false;

  constructor(opts: LauncherOptions) {
    // An option given as undefined takes its default.
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    this.o = {
      persistent: false,
      leaseTtlMs: 180 * SECOND,
      killGraceMs: 5 * SECOND,
      idleCheckMs: 500,
      maxLeaseLapses: DEFAULT_MAX_LEASE_LAPSES,
      claimAfterMs: SECOND,
      writeBacklog: 500,
      gpuVendor: "nvidia",
      log: (l: string) => process.stderr.write(l + "\n"),
      ...given,
    } as unknown as Launcher["o"];
    this.tagFilter = new TagFilter(this.o.tags);
    // A dead launcher's entries come back after this; no longer than its leases.
    this.lockDurationMs = Math.min(30 * SECOND, this.o.leaseTtlMs);
    this.claimAfterMs = Math.min(this.o.claimAfterMs, Math.floor(this.lockDurationMs / 3));
    // Enough entries in hand to fill every slot once more, no more: the rest stay for other launchers.
    this.baseConcurrency = this.o.jobMode === "mpi" ? this.o.nodes.length : Math.max(4, this.o.nodes.reduce((a, n) => a + Math.max(1, n.cores), 0) * 2);
    if (this.o.nodes.length === 0) throw new Error("a launcher needs at least one node");
    this.owner = `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
    this.pool = new NodePool(
      this.o.nodes.map((n) => ({ host: n.host, gpuIds: nodeGpuIds(n) })),
      this.o.jobMode,
    );
    this.writer = new TransitionWriter(this.o.client.store, undefined, undefined, { at: this.o.writeBacklog, say: (n) => this.sayBehind(n) });
    this.fence = new Fence({
      store: this.o.client.store,
      owner: this.owner,
      leaseTtlMs: this.o.leaseTtlMs,
      lockDurationMs: this.lockDurationMs,
      termLeadMs: Math.min(this.o.killGraceMs, Math.floor(this.o.leaseTtlMs / 8)),
      log: (l) => this.log(l),
      move: (ids, deadline) => this.supervisor?.moveDeadlines(ids, deadline),
    });
    this.deadline = this.o.timeLimitMinutes === undefined ? undefined : this.startedAt + this.o.timeLimitMinutes * 60 * SECOND;
  }

  private log(line: string): void {
    this.o.log(redactUrl(`[launcher ${this.owner}] ${line}`));
  }

  minutesLeft(): number {
    return this.deadline === undefined ? Infinity : (this.deadline - Date.now()) / 60_000;
  }

  /** Runs until nothing is left (unless persistent), the time limit, or stop(). */
  async run(): Promise<LauncherSummary> {
    if (this.state !== "created") throw new Error("a launcher runs once");
    this.state = "running";
    const { store, queues } = this.o.client;
    await this.fence.sync();
    await store.launchers.insertOne({
      _id: this.owner,
      host: hostname(),
      pid: process.pid,
      mode: this.o.jobMode,
      // The exact names, or the parts of names it matches (0.x's --wf-filter).
      workflows: this.o.workflows ?? this.o.workflowParts ?? null,
      nodes: this.o.nodes.map((n) => n.host),
      startedAt: new Date(),
      heartbeat: new Date(),
      state: "running",
    });
    this.unsubscribeKill = await queues.subscribe(KILL_CHANNEL, (id) => this.onKill(id));
    this.supervisor = ProcessSupervisor.start((l) => this.log(l), { fence: this.fence, termLeadMs: this.fence.termLeadMs });
    const which = this.o.workflows?.join(",") ?? (this.o.workflowParts ? `containing ${this.o.workflowParts.join(" or ")}` : "(all)");
    const stopped = new Promise<void>((r) => (this.stopResolve = r));
    // Before the first look: a workflow queued in between is heard of, not found at the next poll.
    if (this.o.workflows === undefined) {
      this.unsubscribeWorkflows = await queues.subscribe(WORKFLOWS_CHANNEL, () => {
        this.refreshWorkers().catch((err: unknown) => this.log(`discovering workflows failed: ${coerceError(err).message}`));
      });
    }
    this.log(`started: ${this.o.jobMode} mode on ${this.o.nodes.length} node(s), workflows ${which}, time limit ${this.o.timeLimitMinutes === undefined ? "none" : `${this.o.timeLimitMinutes} min`}`);
    await this.refreshWorkers();
    await this.recoverLeases();
    const every = (ms: number, fn: () => Promise<void>) => {
      // One run at a time: on a large FerretDB database a count can outlast the interval.
      let busy = false;
      const t = setInterval(() => {
        if (busy) return;
        busy = true;
        fn()
          .catch((err: unknown) => {
            // A task cut short by shutdown closing the connections is not news.
            if (this.state === "running") this.log(`background task failed: ${coerceError(err).message}`);
          })
          .finally(() => (busy = false));
      }, ms);
      this.timers.push(t);
    };
    every(this.fence.renewEveryMs, () => this.heartbeat());
    // Jittered so many launchers do not sweep in step.
    every(Math.max(500, Math.floor(this.o.leaseTtlMs / 2 + Math.random() * 1000)), () => this.recoverLeases());
    every(this.o.idleCheckMs, () => this.checkIdle());
    if (this.o.workflows === undefined) every(2 * SECOND, () => this.refreshWorkers());
    if (this.deadline !== undefined) {
      const t = setTimeout(() => this.stop("time limit reached"), Math.max(0, this.deadline - Date.now()));
      this.timers.push(t);
    }
    await stopped;
    await this.shutdown();
    this.summary.reason = this.stopReason;
    return this.summary;
  }

  /** Asks the launcher to stop: running jobs are ended as timed out (RESTART_READY when allowed). */
  stop(reason: string): void {
    if (this.state !== "running") return;
    this.state = "stopping";
    this.stopReason = reason;
    this.log(`stopping: ${reason}`);
    this.stopResolve?.();
  }

  private async shutdown(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.pool.close();
    for (const r of this.running.values()) {
      r.timedOut = true;
      r.handle?.terminate(this.o.killGraceMs);
    }
    // Workers close after their processors return: waiters got null from the pool and gave their entries back.
    await Promise.all([...this.workers.values()].map((w) => w.close().catch(() => undefined)));
    while (this.tasks.size > 0) await Promise.all([...this.tasks]);
    await this.flushReleases();
    await this.flushAnnouncements();
    await this.writer.close();
    await this.supervisor?.close();
    await this.unsubscribeKill?.();
    await this.unsubscribeWorkflows?.();
    await this.o.client.store.launchers.updateOne({ _id: this.owner }, { $set: { state: "exited", heartbeat: new Date() } }).catch(() => undefined);
    this.state = "stopped";
    this.log(`stopped (${this.stopReason}): ${this.summary.finished} finished, ${this.summary.failed} failed, ${this.summary.restarted} to restart, ${this.summary.killed} killed; ${this.costs()}`);
  }

  /**
   * What the jobs cost this launcher: database commands and CPU per job
   * ended here, the figures that decide how many launchers one database and
   * one node can feed (DESIGN §7).
   */
  private costs(): string {
    const n = this.summary.finished + this.summary.failed + this.summary.restarted + this.summary.killed;
    const { store } = this.o.client;
    const cpu = process.cpuUsage(this.cpuAtStart);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const per = (x: number) => (n > 0 ? (x / n).toFixed(2) : "-");
    const byName = [...store.commands.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ");
    const helper = this.supervisor?.spawnCpuMs() ?? 0;
    const spawn = helper > 0 ? `; spawn helper CPU ${helper.toFixed(0)} ms (${per(helper)} ms per job)` : "";
    return `${store.commandCount()} database commands (${per(store.commandCount())} per job: ${byName || "none"}), CPU ${cpuMs.toFixed(0)} ms (${per(cpuMs)} ms per job)${spawn}`;
  }

  private async refreshWorkers(): Promise<void> {
    if (this.state !== "running") return;
    const wanted = this.o.workflows ?? this.matching(await this.o.client.queues.workflows());
    for (const wf of wanted) {
      if (this.workers.has(wf)) continue;
      // Enough entries in hand to fill every slot once more, no more: the rest stay for other launchers.
      const w = this.o.client.queues.createWorker(wf, (job, token) => this.process(job, token), {
        concurrency: this.baseConcurrency,
        lockDurationMs: this.lockDurationMs,
        stalledIntervalMs: this.lockDurationMs,
        // A job whose launchers keep dying while it runs ahead of its claim is
        // failed as a job whose leases keep lapsing is (recoverLapsedLeases).
        maxStalledCount: Math.max(1, this.o.maxLeaseLapses - 1),
        drainDelaySeconds: 1,
        onError: (err) => this.log(`queue ${wf}: ${err.message}`),
        onLocksExtended: (ids, sentAt) => this.fence.locksExtended(ids, sentAt),
      });
      w.on("failed", (entry: BullJob<QueueData> | undefined, err: Error) => {
        if (entry && failedAsStalled(err)) this.failStalled(entry.data.id).catch((e: unknown) => this.log(`job ${entry.data.id}: ${coerceError(e).message}`));
      });
      this.workers.set(wf, w);
    }
  }

  /** A job whose queue entry BullMQ gave up on: its launchers died while they ran it, maxLeaseLapses times. */
  private async failStalled(id: string): Promise<void> {
    const job = await this.read(id);
    if (!job || !isRunnable(job.state)) return;
    await this.failUnclaimed(job, `its launcher was lost ${this.o.maxLeaseLapses} times while running it (maxLeaseLapses ${this.o.maxLeaseLapses}): not restarted; the job's output file may say why`);
  }

  /** Gives a queue entry back (delayed) instead of completing it: the job was not taken. */
  private async giveBack(entry: BullJob<QueueData>, token: string | undefined, delayMs: number): Promise<never> {
    await entry.moveToDelayed(Date.now() + delayMs, token);
    throw new DelayedError();
  }

  private async appOf(name: string): Promise<App | undefined> {
    let app = this.apps.get(name);
    if (!app) {
      app = (await this.o.client.store.apps.findOne({ name })) ?? undefined;
      if (app) this.apps.set(name, app);
    }
    return app;
  }

  /**
   * The BullMQ processor. The entry's snapshot is the job as it was queued,
   * so nothing is read; a write that finds the job changed since (modified,
   * killed, taken) reads it afresh and decides again.
   */
  private async process(entry: BullJob<QueueData>, token?: string): Promise<void> {
    this.lastActivity = Date.now();
    const id = entry.data.id;
    // An entry whose launcher was lost holding it is read afresh: that launcher may have claimed the job meanwhile.
    let job = entry.data.s && !entry.stalledCounter ? jobFromSnapshot(id, entry.data.s) : await this.read(id);
    if (job && isRunnable(job.state) && !this.tagFilter.accepts(job)) {
      await new Promise((r) => setTimeout(r, this.tagFilter.missPauseMs()));
      return this.giveBack(entry, token, this.tagFilter.delayMs);
    }
    for (let round = 0; job && isRunnable(job.state); round++) {
      if ((await this.take(entry, token, job)) === "done") return;
      // A job edited again and again while it starts: another delivery tries later.
      if (round >= 3) return this.giveBack(entry, token, SECOND);
      job = await this.read(id);
    }
  }

  private read(id: string): Promise<Job | null> {
    return this.o.client.store.jobs.findOne({ _id: id });
  }

  /** Decide, wait for capacity, then run the job ahead of its claim, or claim it and start it. */
  private async take(entry: BullJob<QueueData>, token: string | undefined, job: Job): Promise<Taken> {
    const id = job._id;
    if (this.state !== "running") return this.giveBack(entry, token, 0);
    // Fenced (its leases could not be renewed): no new work until they can.
    if (!this.fence.canTake()) {
      this.pauseFenced(true);
      return this.giveBack(entry, token, 0);
    }
    // An earlier attempt still winding down here (its script restarted the job): never two at once.
    if (this.running.has(id)) return this.giveBack(entry, token, SECOND);
    if (job.wallTimeMinutes > this.minutesLeft()) {
      this.log(`job ${id} needs ${job.wallTimeMinutes} min, ${this.minutesLeft().toFixed(1)} min left: left in the queue for the next launcher`);
      return this.giveBack(entry, token, Math.max(1000, (this.deadline ?? Date.now()) - Date.now()));
    }
    const size = this.sizeOf(job);
    // More GPUs than the site's nodes have: no launcher can ever run it.
    const beyond = gpuLimitProblem(job, this.o.maxGpusPerNode);
    if (beyond) {
      await this.failUnclaimed(job, beyond);
      return "done";
    }
    const refused = this.refusal(job, size);
    if (refused) {
      this.log(`job ${id} needs ${refused}`);
      return this.giveBack(entry, token, 30 * SECOND);
    }
    let workdir: string;
    try {
      workdir = job.workdir || workdirFor(this.o.dbPath, job);
    } catch (err) {
      // Nothing runs without a working directory, and a restart would fail the same way.
      await this.failUnclaimed(job, `cannot make the working directory: ${coerceError(err).message}`);
      return "done";
    }
    const app = await this.appOf(job.application);
    const grant = await this.pool.acquire(size);
    if (!grant) return this.giveBack(entry, token, 0);
    let started = false;
    try {
      await this.roomToWrite();
      if (this.state !== "running") return this.giveBack(entry, token, 0);
      const pre = job.preprocess || app?.preprocess || "";
      const post = job.postprocess || app?.postprocess || "";
      const needsStage = Boolean(job.stageInUrl) || (job.parents.length > 0 && job.inputFiles.trim() !== "");
      const restartRun = job.state === "RESTART_READY" && job.stateHistory.some((h) => h.state === "PREPROCESSED");
      const path: JobState[] = restartRun ? ["RUNNING"] : needsStage || pre ? ["STAGED_IN"] : ["STAGED_IN", "PREPROCESSED", "RUNNING"];
      const steps = path.map((state) => ({ state, message: state === path[0] ? `launcher ${this.owner}` : "" }));
      // A job with scripts is claimed first: a 0.x script may set its own job's state, which needs the lease.
      if (app && !post && path[path.length - 1] === "RUNNING" && this.claimAfterMs > 0) {
        started = true;
        return await this.runAhead(entry, token, job, app, grant, steps, workdir);
      }
      if (!(await this.writer.write(this.claim(job, job.updatedAt, steps, workdir)))) return "changed";
      this.fence.claimed(id);
      started = true;
      const r: Running = { job: { ...job, workdir, state: path[path.length - 1]! }, killed: false, timedOut: false, claimed: true };
      this.running.set(id, r);
      this.track(this.runJob(r, app, grant, pre), id);
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
    if (this.writer.backlog < this.o.writeBacklog) return;
    this.sayBehind(this.writer.backlog);
    await this.writer.room(this.o.writeBacklog);
  }

  /** Said when the backlog is reached, by a write or a slot that waits; at most once a minute. */
  private sayBehind(backlog: number): void {
    const now = Date.now();
    if (now - this.behindSaid < MINUTE) return;
    this.behindSaid = now;
    this.log(`the database is behind: ${backlog} state writes wait for it; no new job starts until it catches up`);
  }

  /**
   * Forgets a run, unless a newer attempt of the same job has taken its
   * place: a job's own script may restart it (RESTART_READY) while its run
   * is still winding down here.
   */
  private untrack(r: Running): void {
    if (this.running.get(r.job._id) !== r) return;
    this.running.delete(r.job._id);
    this.fence.forget(r.job._id);
  }

  private track(task: Promise<void>, id: string): void {
    const t = task.catch((err: unknown) => this.log(`job ${id}: ${coerceError(err).message}`));
    this.tasks.add(t);
    void t.finally(() => this.tasks.delete(t));
  }

  /** Keeps `baseConcurrency` processors free for new entries while some run jobs ahead of their claims. */
  private setAhead(workflow: string, delta: number): void {
    const n = (this.ahead.get(workflow) ?? 0) + delta;
    this.ahead.set(workflow, n);
    const w = this.workers.get(workflow);
    if (w) w.concurrency = this.baseConcurrency + n;
  }

  /**
   * Runs a job before recording anything (DESIGN §7). It ends within
   * `claimAfterMs`: one write records the whole path READY → … →
   * JOB_FINISHED (or FAILED). Still running then: it is claimed (RUNNING,
   * leased) and goes on as any job. Meanwhile its queue entry stays locked
   * by this launcher's worker, so no other launcher can take it; if this
   * launcher dies, the process dies with it (watchdog, pdeathsig), the lock
   * lapses and the entry is delivered again — the job runs again, never
   * twice at once, and is recorded once: each write is conditioned on the
   * version it was queued with.
   */
  private async runAhead(entry: BullJob<QueueData>, token: string | undefined, job: Job, app: App, grant: Grant, steps: Array<{ state: JobState; message: string }>, workdir: string): Promise<Taken> {
    const id = job._id;
    const r: Running = { job: { ...job, workdir }, killed: false, timedOut: false, claimed: false, version: job.updatedAt };
    const outFile = join(workdir, jobOutFileName(job.name));
    this.running.set(id, r);
    this.fence.ahead(id, entry);
    this.setAhead(job.workflow, +1);
    let handedOff = false;
    const release = once(() => grant.release());
    try {
      const t0 = Date.now();
      const handle = this.start(r, app, grant, outFile, true);
      let timer: NodeJS.Timeout | undefined;
      const first = await Promise.race([handle.done, new Promise<"claim">((res) => (timer = setTimeout(() => res("claim"), this.claimAfterMs)))]);
      clearTimeout(timer);
      if (first === "claim" && !r.killed && !r.timedOut) {
        const claimed = await this.claimAhead(r, steps);
        if (claimed === "claimed") {
          handedOff = true;
          this.track(this.complete(r, app, grant, handle, t0, outFile), id);
          return "done";
        }
        handle.terminate(this.o.killGraceMs);
        await handle.done;
        // Fenced: nothing was written; the entry goes back if it is still ours (else its lock is another's and this fails).
        return claimed === "fenced" ? this.giveBack(entry, token, 0) : claimed;
      }
      const outcome = await handle.done;
      release();
      // killjob recorded USER_KILLED itself: the job was queued, not leased.
      if (r.killed) return "done";
      // Stopping, or its process lost with the spawn helper: nothing was recorded, so the entry simply goes back.
      if (r.timedOut || outcome.lost) return this.giveBack(entry, token, 0);
      const runtimeSeconds = (Date.now() - t0) / 1000;
      const set: Record<string, unknown> = { exitCode: outcome.exitCode, runtimeSeconds, workdir };
      let tail: Array<{ state: JobState; message?: string }>;
      let result: unknown;
      if (outcome.exitCode === 0) {
        result = readResult(outFile);
        if (result !== undefined) set["data.result"] = result;
        try {
          stageOut(workdir, r.job);
          tail = [{ state: "RUN_DONE" }, { state: "POSTPROCESSED" }, { state: "JOB_FINISHED" }];
        } catch (err) {
          tail = [{ state: "RUN_DONE" }, { state: "FAILED", message: `stage-out failed: ${coerceError(err).message}` }];
        }
      } else {
        const why = describe(outcome);
        const retry = await this.fastFailRetry(r.job, outcome, runtimeSeconds);
        const reason = job.postErrorHandler ? `${why}; post_error_handler is set but the app has no postprocess script` : why;
        tail = [{ state: "RUN_ERROR", message: withTail(why, outFile) }, retry ?? { state: "FAILED", message: reason }];
      }
      for (let attempt = 0; attempt < 3; attempt++) {
        if (await this.finish(r, [...steps, ...tail], set, job.state, result)) return "done";
        const verdict = await this.sameAsQueued(r, job);
        if (verdict !== "same") return verdict;
      }
      return "done";
    } finally {
      if (!handedOff) {
        release();
        this.untrack(r);
        this.lastActivity = Date.now();
      }
      this.setAhead(job.workflow, -1);
    }
  }

  /** The claim of a queued job: its steps to RUNNING (or STAGED_IN), a lease, its working directory; conditioned on the version it was queued with. */
  private claim(job: Job, version: Date | undefined, steps: Array<{ state: JobState; message: string }>, workdir: string): Transition {
    return { id: job._id, from: job.state, version, path: steps, set: { lock: { owner: this.owner, until: this.fence.leaseUntil(job._id) }, workdir } };
  }

  /** Records a job that runs ahead of its claim as RUNNING under a lease. */
  private async claimAhead(r: Running, steps: Array<{ state: JobState; message: string }>): Promise<"claimed" | "fenced" | Taken> {
    const queued = r.job.state;
    for (let attempt = 0; attempt < 3; attempt++) {
      // Its entry's lock may have lapsed (frozen launcher): it may be another's now, so nothing is written.
      if (this.fence.lapsed(r.job._id)) return "fenced";
      if (await this.writer.write(this.claim({ ...r.job, state: queued }, r.version, steps, r.job.workdir))) {
        this.fence.claimed(r.job._id);
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
  private async sameAsQueued(r: Running, queued: Job): Promise<"same" | Taken> {
    const fresh = await this.read(queued._id);
    if (!fresh || fresh.state !== queued.state || fresh.attempts !== queued.attempts) return "done";
    if (!sameLaunch(fresh, { ...queued, workdir: fresh.workdir })) return "changed";
    r.version = fresh.updatedAt;
    r.job.hasChildren = fresh.hasChildren;
    return "same";
  }

  /** A write for a job this launcher runs; the job's state in memory follows it, for the catch-all in runJob. */
  private async advance(r: Running, t: Transition): Promise<boolean> {
    const ok = await this.writer.write(r.released ? { ...t, owner: null } : r.claimed ? { ...t, owner: this.owner } : { ...t, version: r.version });
    if (ok) r.job.state = t.path[t.path.length - 1]!.state;
    return ok;
  }

  /** A job refused before it was claimed: recorded FAILED from its runnable state, no lease involved. */
  private async failUnclaimed(job: Job, message: string): Promise<void> {
    this.log(`job ${job._id}: ${message}`);
    if (!(await this.writer.write({ id: job._id, from: job.state, path: [{ state: "FAILED", message }] }))) return;
    this.summary.failed++;
    this.announce({ id: job._id, workflow: job.workflow, name: job.name, state: "FAILED" });
    if (job.hasChildren) this.queueRelease(job._id);
  }

  private async runJob(r: Running, app: App | undefined, grant: Grant, pre: string): Promise<void> {
    const id = r.job._id;
    const workdir = r.job.workdir;
    const outFile = join(workdir, jobOutFileName(r.job.name));
    // A preprocess that changes the job's size swaps its grant for one of the new size.
    let g = grant;
    const release = () => g.release();
    await this.guarded(r, release, async () => {
      if (!app) {
        await this.finish(r, [{ state: "FAILED", message: `app '${r.job.application}' does not exist` }], {});
        return;
      }
      try {
        mkdirSync(workdir, { recursive: true });
      } catch (err) {
        await this.finish(r, [{ state: "FAILED", message: `cannot make the working directory: ${coerceError(err).message}` }], {});
        return;
      }
      if (r.job.state === "STAGED_IN") {
        try {
          stageIn(workdir, r.job, await this.parentDirs(r.job));
        } catch (err) {
          await this.finish(r, [{ state: "FAILED", message: `stage-in failed: ${coerceError(err).message}` }], {});
          return;
        }
        if (pre) {
          const out = await this.script("preprocess", pre, r.job, workdir, PREPROCESS_LIMIT_MS);
          if (out.exitCode !== 0) {
            await this.finish(r, [{ state: "FAILED", message: `preprocess ${describe(out)}` }], {});
            return;
          }
          // 0.x builds the run from the row as its preprocess left it
          // (serial_mode_timed.py:232-262, launcher.py:60-80): edited args,
          // environment, ranks, nodes are what runs.
          const now = await this.afterScript(r, "STAGED_IN");
          if (!now) return;
          if (r.released && now.state !== "PREPROCESSED") {
            return void (await this.finish(r, [{ state: "FAILED", message: `its preprocess left it ${now.state}, from which no launcher goes on` }], {}));
          }
          const sizeBefore = this.sizeOf(r.job);
          r.job = { ...now, workdir };
          const regrant = await this.regrant(r, g, sizeBefore);
          if (regrant === "left") return;
          if (regrant === "stopping") return void (await this.finishTimedOut(r, app, outFile));
          if (regrant) g = regrant;
        }
        if (r.killed) return void (await this.finishKilled(r));
        const from = r.job.state as "STAGED_IN" | "PREPROCESSED";
        const path: Transition["path"] = from === "STAGED_IN" ? [{ state: "PREPROCESSED" }, { state: "RUNNING" }] : [{ state: "RUNNING", message: `launcher ${this.owner}` }];
        const lease = r.released ? { lock: { owner: this.owner, until: new Date(Date.now() + this.o.leaseTtlMs) } } : undefined;
        if (!(await this.advance(r, { id, from, path, set: lease }))) return this.lostLease(r);
        r.released = false;
      }
      if (r.killed) return void (await this.finishKilled(r));
      if (r.timedOut) return void (await this.finishTimedOut(r, app, outFile));
      await this.afterStart(r, app, this.start(r, app, g, outFile), Date.now(), outFile, release);
    });
  }

  /** The working directories of a job's parents, in the order of its parent list, with their ids (a clash of names is suffixed with one). */
  private async parentDirs(job: Job): Promise<Array<{ id: string; dir: string }>> {
    if (job.parents.length === 0) return [];
    const docs = await this.o.client.store.jobs.find({ _id: { $in: job.parents } }, { projection: { workdir: 1, workflow: 1, name: 1 } }).toArray();
    const byId = new Map(docs.map((d) => [d._id, d]));
    return job.parents.flatMap((p) => {
      const d = byId.get(p);
      // 0.x computes a parent's directory whether or not it recorded one.
      return d ? [{ id: p, dir: d.workdir || workdirFor(this.o.dbPath, d) }] : [];
    });
  }

  /**
   * A preprocess may change the job's size (0.x's `make_sides_pre.py` sets
   * `ranks_per_node`): the grant is swapped for one of the new size, or the
   * job is left (RESTART_READY, already PREPROCESSED so it runs at once) for
   * a launcher it fits. Undefined: the size did not change.
   */
  private async regrant(r: Running, g: Grant, sizeBefore: Demand): Promise<Grant | "left" | "stopping" | undefined> {
    const size = this.sizeOf(r.job);
    const why = this.refusal(r.job, size);
    if (why) {
      const pre = r.job.state === "STAGED_IN" ? [{ state: "PREPROCESSED" as const }] : [];
      await this.finish(r, [...pre, { state: "RESTART_READY", message: `its preprocess asked for ${why}` }], {});
      return "left";
    }
    if (sameDemand(size, sizeBefore)) return undefined;
    g.release();
    const next = await this.pool.acquire(size);
    if (next) return next;
    // The pool closes when the launcher stops.
    r.timedOut = true;
    return "stopping";
  }

  /** A job's share of this launcher's capacity: of one node (serial), or nodes (mpi), and GPUs on each. */
  private sizeOf(job: Job): Demand {
    return demandOf(job, this.o.jobMode);
  }

  /** Why this launcher can never run the job, or undefined when it can. */
  private refusal(job: Job, size: Demand): string | undefined {
    if (this.o.jobMode === "serial" && (job.numNodes > 1 || job.ranksPerNode > 1)) {
      // As 0.x: a serial launcher runs single-process jobs; several ranks, even on one node, need mpirun.
      return `${job.numNodes > 1 ? `${job.numNodes} nodes` : `${job.ranksPerNode} ranks`}: serial launchers run single-process jobs; left for an mpi launcher`;
    }
    const never = this.pool.whyNever(size);
    if (never) return `${never}: left for another launcher`;
    return undefined;
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
  private async afterScript(r: Running, expected: JobState): Promise<Job | undefined> {
    const now = await this.read(r.job._id);
    if (now && now.lock?.owner === this.owner && now.state === expected) return now;
    if (!now || now.lock !== null || !ACTIVE_STATES.includes(now.state)) {
      if (now?.lock) this.lostLease(r);
      return undefined;
    }
    r.released = true;
    r.job.state = now.state;
    return now;
  }

  /** After a postprocess or handler that exited 0: what 0.x made of the state it left (transitions.py:498-515). */
  private async afterPost(r: Running, from: "RUN_DONE" | "RUN_ERROR" | "RUN_TIMEOUT", result?: unknown): Promise<unknown> {
    const now = await this.afterScript(r, from);
    if (!now) return;
    const finished: Array<{ state: JobState; message?: string }> = [{ state: "POSTPROCESSED" }, { state: "JOB_FINISHED" }];
    if (r.released) {
      if (now.state === "POSTPROCESSED") return this.stageOutAndFinish(r, finished.slice(1), {}, "POSTPROCESSED", result);
      return this.finish(r, [{ state: "FAILED", message: `its postprocess left it ${now.state}, from which no launcher goes on` }], {});
    }
    if (from === "RUN_DONE") return this.stageOutAndFinish(r, finished, {}, from, result);
    const what = from === "RUN_ERROR" ? "Error handling didn't fix job state" : "Timeout handling didn't change job state";
    return this.finish(r, [{ state: "FAILED", message: `${what}: marking FAILED` }], {}, from);
  }

  /** Runs one of a job's stretches on this launcher; whatever happens, its share of the nodes and its place in `running` are given back. */
  private async guarded(r: Running, release: () => void, body: () => Promise<unknown>): Promise<void> {
    try {
      await body();
    } catch (err) {
      await this.failUnexpected(r, err);
    } finally {
      release();
      this.untrack(r);
      this.lastActivity = Date.now();
    }
  }

  /** Starts the job's process; a command that cannot be built is a failed start. */
  private start(r: Running, app: App, grant: Grant, outFile: string, mkdir = false): RunHandle {
    let handle: RunHandle;
    try {
      const { argv, shellCommand, env } = this.command(r.job, app, grant);
      // Told to a job started ahead of its claim: the client's currentJob() waits that long to see it RUNNING.
      if (!r.claimed) env.BALSAM_CLAIM_AFTER_MS = String(this.claimAfterMs);
      handle = this.supervisor!.run({ argv, shellCommand, cwd: r.job.workdir, env, outFile, mkdir, fenceKey: r.job._id });
    } catch (err) {
      handle = { pid: undefined, done: Promise.resolve({ exitCode: null, signal: null, timedOut: false, spawnError: coerceError(err).message }), terminate: () => undefined };
    }
    r.handle = handle;
    if (r.killed || r.timedOut) handle.terminate(this.o.killGraceMs);
    return handle;
  }

  /** A job claimed while it ran ahead: from RUNNING on, as any job. */
  private async complete(r: Running, app: App, grant: Grant, handle: RunHandle, t0: number, outFile: string): Promise<void> {
    const release = once(() => grant.release());
    await this.guarded(r, release, () => this.afterStart(r, app, handle, t0, outFile, release));
  }

  /** Waits for the job's process and records how it ended (postprocess and handlers included). */
  private async afterStart(r: Running, app: App, handle: RunHandle, t0: number, outFile: string, release: () => void): Promise<unknown> {
    const job = r.job;
    const id = job._id;
    const workdir = job.workdir;
    {
      const outcome = await handle.done;
      release();
      const runtimeSeconds = (Date.now() - t0) / 1000;
      if (r.killed) return await this.finishKilled(r);
      if (r.timedOut) return await this.finishTimedOut(r, app, outFile, runtimeSeconds);
      if (outcome.lost) return await this.finish(r, [{ state: "RESTART_READY", message: outcome.lost }], { runtimeSeconds });
      const post = job.postprocess || app.postprocess || "";
      if (outcome.exitCode === 0) {
        const result = readResult(outFile);
        const set: Record<string, unknown> = { exitCode: 0, runtimeSeconds };
        if (result !== undefined) set["data.result"] = result;
        if (post) {
          if (!(await this.advance(r, { id, from: "RUNNING", path: [{ state: "RUN_DONE" }], set: set as Partial<Job> }))) return this.lostLease(r);
          const p = await this.script("postprocess", post, job, workdir, PREPROCESS_LIMIT_MS, "RUN_DONE");
          if (p.exitCode !== 0) return await this.finish(r, [{ state: "FAILED", message: `postprocess ${describe(p)}` }], {}, "RUN_DONE");
          return await this.afterPost(r, "RUN_DONE", result);
        }
        return await this.stageOutAndFinish(r, [{ state: "RUN_DONE" }, { state: "POSTPROCESSED" }, { state: "JOB_FINISHED" }], set, "RUNNING", result);
      }
      const why = outcome.spawnError ? `could not start: ${outcome.spawnError}` : describe(outcome);
      const set = { exitCode: outcome.exitCode, runtimeSeconds } as Partial<Job>;
      const retry = await this.fastFailRetry(job, outcome, runtimeSeconds);
      if (retry) return await this.finish(r, [{ state: "RUN_ERROR", message: withTail(why, outFile) }, retry], set);
      if (job.postErrorHandler && post) {
        if (!(await this.advance(r, { id, from: "RUNNING", path: [{ state: "RUN_ERROR", message: withTail(why, outFile) }], set }))) return this.lostLease(r);
        const p = await this.script("postprocess", post, job, workdir, PREPROCESS_LIMIT_MS, "RUN_ERROR");
        if (p.exitCode !== 0) return await this.finish(r, [{ state: "FAILED", message: `error handler ${describe(p)}` }], {}, "RUN_ERROR");
        return await this.afterPost(r, "RUN_ERROR");
      }
      const reason = job.postErrorHandler ? `${why}; post_error_handler is set but the app has no postprocess script` : why;
      await this.finish(r, [{ state: "RUN_ERROR", message: withTail(why, outFile) }, { state: "FAILED", message: reason }], set);
    }
  }

  /**
   * A run that failed fast, as 0.x's launcher retried it (exit code 1 or
   * 255, or SIGSEGV, within 20 s): the RESTART_READY step, while the job
   * has retries left; undefined otherwise. The retries so far are counted in
   * its history (read: this path is rare and a snapshot has none).
   */
  private async fastFailRetry(job: Job, o: RunOutcome, runtimeSeconds: number): Promise<{ state: JobState; message: string } | undefined> {
    const fast = runtimeSeconds < FAST_FAIL_SECONDS && (o.exitCode === 1 || o.exitCode === 255 || o.signal === "SIGSEGV");
    if (!fast || job.fastFailRetries <= 0) return undefined;
    const doc = await this.read(job._id);
    const done = (doc?.stateHistory ?? []).filter((h) => h.state === "RESTART_READY" && h.message.startsWith(FAST_FAIL_MESSAGE)).length;
    if (done >= job.fastFailRetries) return undefined;
    return { state: "RESTART_READY", message: `${FAST_FAIL_MESSAGE} ${done + 1} of ${job.fastFailRetries}` };
  }

  /**
   * Whatever went wrong outside the handled paths: recorded FAILED with the
   * error, not left leased — a lapsed lease would restart the job into the
   * same error, for ever. A MongoDB outage that outlasted the writer's
   * retries is the exception: the job did nothing wrong, so its lease is
   * left to lapse and recovery restarts it (at most maxLeaseLapses times).
   */
  private async failUnexpected(r: Running, err: unknown): Promise<void> {
    const msg = coerceError(err).message;
    this.log(`job ${r.job._id}: ${msg}`);
    if (isFinal(r.job.state) || isRunnable(r.job.state) || isTransient(err)) return;
    try {
      await this.finish(r, [{ state: "FAILED", message: `launcher error in ${r.job.state}: ${msg}` }], {});
    } catch (again) {
      this.log(`job ${r.job._id}: could not record the failure (${coerceError(again).message}); its lease will lapse`);
    }
  }

  /**
   * The variables every process of a job sees, as 0.x's launcher set them:
   * its id, its parents as a JSON list, the launcher's node count and mode,
   * the database; and the lease, so the job's own scripts may set its state
   * (DESIGN invariant 3).
   */
  private jobEnv(job: Job): Record<string, string> {
    return {
      ...job.environVars,
      BALSAM_JOB_ID: job._id,
      BALSAM_PARENT_IDS: JSON.stringify(job.parents),
      BALSAM_DB_PATH: this.o.dbPath,
      BALSAM_LAUNCHER_NODES: String(this.o.nodes.length),
      BALSAM_JOB_MODE: this.o.jobMode,
      BALSAM_JOB_LEASE: this.owner,
    };
  }

  private command(job: Job, app: App, grant: Grant): { argv: string[]; shellCommand?: string; env: Record<string, string> } {
    const jobEnv = this.jobEnv(job);
    const exe = splitCommandLine(app.executable, "executable");
    const args = splitCommandLine(job.args, "args");
    let argv: string[];
    let env: Record<string, string>;
    if (this.o.jobMode === "serial") {
      ({ argv, env } = this.packed(job, grant.hosts[0]!, grant.gpus[0] ?? [], [...exe, ...args], jobEnv));
    } else {
      const kind = this.o.mpiKind ?? "openmpi";
      const gpus = mpiGpuBinding(kind, this.o.gpuVendor, grant.gpus[0] ?? [], job.ranksPerNode, job.gpusPerRank ?? 0);
      const mpi = buildMpiCommand(kind, {
        hosts: grant.hosts,
        ranksPerNode: job.ranksPerNode,
        threadsPerRank: job.threadsPerRank,
        threadsPerCore: job.threadsPerCore,
        cpuAffinity: job.cpuAffinity,
        mpiFlags: splitCommandLine(job.mpiFlags, "mpi_flags"),
        command: [...gpus.prefix, ...exe, ...args],
        env: { ...jobEnv, ...gpus.env },
        asRoot: process.getuid?.() === 0,
      });
      argv = mpi.argv;
      env = { ...jobEnv, ...mpi.env };
    }
    // Only apps with an envscript go through a shell: it has to be sourced, before the MPI launch too.
    if (app.envscript) return { argv: [], shellCommand: `source ${shellQuote([app.envscript])} && exec ${shellQuote(argv)}`, env };
    return { argv, env };
  }

  /**
   * A packed serial job's share of its node, as 0.x's serial mode gave it:
   * OMP_NUM_THREADS, exactly the GPUs its grant holds, and with
   * `cpu_affinity depth` its own cores through taskset.
   */
  private packed(job: Job, host: string, gpus: string[], command: string[], jobEnv: Record<string, string>): { argv: string[]; env: Record<string, string> } {
    const env: Record<string, string> = { OMP_NUM_THREADS: String(job.threadsPerRank), ...jobEnv, ...gpuEnv(this.o.gpuVendor, gpus) };
    const node = this.o.nodes.find((n) => n.host === host);
    const turn = this.turns.get(host) ?? 0;
    this.turns.set(host, turn + 1);
    if (job.cpuAffinity === "depth" && node && node.cores > 0 && this.taskset) {
      const slots = Math.max(1, Math.min(job.nodePackingCount, node.cores));
      const width = Math.max(1, Math.floor(node.cores / slots));
      const first = (turn % slots) * width;
      return { argv: [this.taskset, "-c", `${first}-${first + width - 1}`, ...command], env };
    }
    return { argv: command, env };
  }

  /** Runs a pre/postprocess script in the working directory, with the job's environment; its output goes to `<what>.log` there. */
  private async script(what: "preprocess" | "postprocess", cmd: string, job: Job, workdir: string, timeoutMs: number, state: JobState = job.state): Promise<RunOutcome> {
    const log = join(workdir, `${what}.log`);
    // 0.x's header tells a handler's log from a postprocess's (transitions.py:474-478).
    const why = state === "RUN_ERROR" || state === "RUN_TIMEOUT" ? `# Invoked to handle ${state}\n` : "";
    appendFileSync(log, `# balsam: running ${cmd}\n${why}`);
    let argv: string[];
    try {
      argv = splitCommandLine(cmd, what);
    } catch (err) {
      return { exitCode: null, signal: null, timedOut: false, spawnError: coerceError(err).message };
    }
    const env: Record<string, string> = { ...this.jobEnv(job), BALSAM_JOB_STATE: state };
    // 0.x's handler flags: the same script can tell an error or a timeout from a normal end.
    if (state === "RUN_ERROR") env.BALSAM_JOB_ERROR = "TRUE";
    if (state === "RUN_TIMEOUT") env.BALSAM_JOB_TIMEOUT = "TRUE";
    const h = this.supervisor!.run({ argv, cwd: workdir, outFile: log, timeoutMs, env, fenceKey: job._id });
    return h.done;
  }

  private async stageOutAndFinish(r: Running, path: Array<{ state: JobState; message?: string }>, set: Record<string, unknown>, from: JobState, result?: unknown): Promise<unknown> {
    try {
      stageOut(r.job.workdir, r.job);
    } catch (err) {
      return this.finish(r, [{ state: "FAILED", message: `stage-out failed: ${coerceError(err).message}` }], {}, from);
    }
    await this.finish(r, path, set, from, result);
  }

  /** The last write for a job on this launcher: it drops the lease. */
  private async finish(r: Running, path: Array<{ state: JobState; message?: string }>, set: Record<string, unknown>, from: JobState = r.job.state, result?: unknown): Promise<boolean> {
    const last = path[path.length - 1]!.state;
    const t: Transition = { id: r.job._id, from, path, set: { ...set, lock: null } as Partial<Job> };
    if (last === "RESTART_READY") t.inc = { attempts: 1 };
    if (!(await this.advance(r, t))) {
      // Unclaimed, a miss is the caller's to sort out (DESIGN §7).
      if (r.claimed) this.lostLease(r);
      return false;
    }
    const { queues } = this.o.client;
    if (last === "RESTART_READY") {
      this.summary.restarted++;
      // Only the pointer: this launcher's copy of the job lacks the history a restart's path depends on.
      const { _id, workflow, numNodes } = r.job;
      await queues.enqueue([queueItem({ _id, workflow, numNodes, attempts: r.job.attempts + 1 })]);
      return true;
    }
    if (last === "JOB_FINISHED") this.summary.finished++;
    else if (last === "FAILED") this.summary.failed++;
    else if (last === "USER_KILLED") this.summary.killed++;
    this.announce({ id: r.job._id, workflow: r.job.workflow, name: r.job.name, state: last, result });
    // Children added while this job ran are released by the idle check or `balsam service`.
    if (r.job.hasChildren) this.queueRelease(r.job._id);
    return true;
  }

  private async finishKilled(r: Running): Promise<unknown> {
    return this.finish(r, [{ state: "USER_KILLED", message: "killed by user" }], {});
  }

  private async finishTimedOut(r: Running, app: App, outFile: string, runtimeSeconds?: number): Promise<unknown> {
    const job = r.job;
    const from: JobState = job.state === "RUNNING" ? "RUNNING" : job.state;
    const set = runtimeSeconds === undefined ? {} : { runtimeSeconds };
    if (from !== "RUNNING") {
      // Stopped before the process started: nothing ran, so it simply runs again elsewhere.
      return this.finish(r, [{ state: "RESTART_READY", message: `launcher stopping: ${this.stopReason}` }], set, from);
    }
    const post = job.postprocess || app.postprocess || "";
    if (job.postTimeoutHandler && post) {
      if (!(await this.advance(r, { id: job._id, from, path: [{ state: "RUN_TIMEOUT", message: this.stopReason }], set: set as Partial<Job> }))) return this.lostLease(r);
      const p = await this.script("postprocess", post, job, job.workdir, PREPROCESS_LIMIT_MS, "RUN_TIMEOUT");
      if (p.exitCode !== 0) return this.finish(r, [{ state: "FAILED", message: `timeout handler ${describe(p)}` }], {}, "RUN_TIMEOUT");
      return this.afterPost(r, "RUN_TIMEOUT", readResult(outFile));
    }
    if (job.autoTimeoutRetry) {
      return this.finish(r, [{ state: "RUN_TIMEOUT", message: this.stopReason }, { state: "RESTART_READY", message: "auto timeout retry" }], set, from);
    }
    return this.finish(r, [{ state: "RUN_TIMEOUT", message: this.stopReason }, { state: "FAILED", message: "timed out; auto_timeout_retry is off" }], set, from);
  }

  private lostLease(r: Running): void {
    if (this.fence.lapsed(r.job._id)) this.log(`job ${r.job._id}: fenced, and no longer this launcher's (recovered elsewhere meanwhile): writing nothing for it`);
    else this.log(`job ${r.job._id}: lease lost (state changed elsewhere); dropping it`);
  }

  private onKill(id: string): void {
    const r = this.running.get(id);
    if (!r) return;
    r.killed = true;
    this.log(`job ${id}: kill requested`);
    r.handle?.terminate(this.o.killGraceMs);
  }

  /**
   * Tells the finished channel, the jobs of one write in one message (one
   * Redis command instead of one a job); a search hears them within
   * milliseconds either way.
   */
  private announce(f: { id: string; workflow: string; name: string; state: JobState; result?: unknown }): void {
    this.announcements.push(f);
    this.announceTimer ??= setTimeout(() => void this.flushAnnouncements(), 2);
  }

  private async flushAnnouncements(): Promise<void> {
    if (this.announceTimer) clearTimeout(this.announceTimer);
    this.announceTimer = undefined;
    const list = this.announcements;
    this.announcements = [];
    if (list.length === 0) return;
    await this.o.client.queues.publish(FINISHED_CHANNEL, JSON.stringify(list.length === 1 ? list[0] : list)).catch(() => undefined);
  }

  private queueRelease(id: string): void {
    this.releaseBuffer.push(id);
    this.releaseTimer ??= setTimeout(() => {
      this.flushReleases().catch((err: unknown) => this.log(`releasing children failed: ${coerceError(err).message}`));
    }, 10);
  }

  /** Children of finished jobs, checked in batches rather than one query per job. */
  private async flushReleases(): Promise<void> {
    if (this.releaseTimer) clearTimeout(this.releaseTimer);
    this.releaseTimer = undefined;
    const ids = this.releaseBuffer;
    this.releaseBuffer = [];
    if (ids.length) await this.o.client.jobs.releaseChildren(ids);
  }

  private async heartbeat(): Promise<void> {
    const { store } = this.o.client;
    // Only the jobs this launcher is working on: a claim whose answer was lost
    // (a retried write after a dropped connection) must be left to lapse, not
    // kept alive by an owner-wide renewal. By _id, each update is an index
    // lookup on FerretDB too.
    // Jobs running ahead of their claim have no lease to renew.
    const ids = [...this.running.values()].filter((r) => r.claimed).map((r) => r.job._id);
    await this.fence.heartbeat(ids, () => store.launchers.updateOne({ _id: this.owner }, { $set: { heartbeat: new Date(), inFlight: this.running.size } }));
    if (this.fence.canTake()) this.pauseFenced(false);
  }

  /**
   * A fenced launcher's workers fetch nothing until a heartbeat renews again:
   * entries stay in the queue for other launchers instead of bouncing through
   * this one (measured before: ~400 give-backs a second a launcher, a load
   * that kept its own heartbeats late, so it stayed fenced).
   */
  private pauseFenced(pause: boolean): void {
    if (pause === this.fencePaused || this.state !== "running") return;
    this.fencePaused = pause;
    this.log(pause ? "fenced: leases could not be renewed in time; taking no new work until they are" : "leases renewed again: taking work");
    for (const w of this.workers.values()) void (pause ? w.pause(true) : w.resume()).catch(() => undefined);
  }

  private async recoverLeases(): Promise<void> {
    const ids = await recoverLapsedLeases(this.o.client.store, this.o.client.queues, { maxLeaseLapses: this.o.maxLeaseLapses });
    if (ids.length) this.log(`recovered ${ids.length} job(s) whose launcher's lease lapsed`);
  }

  /** The names among `names` this launcher consumes. */
  private matching(names: readonly string[]): string[] {
    const parts = this.o.workflowParts;
    return parts ? names.filter((w) => parts.some((p) => w.includes(p))) : [...names];
  }

  /**
   * The workflows this launcher consumes now: its exact list, those with
   * jobs in MongoDB or a queue in Redis matching its parts, or undefined
   * for all.
   */
  private async consumed(): Promise<string[] | undefined> {
    if (this.o.workflows || !this.o.workflowParts) return this.o.workflows;
    const { jobs, queues } = this.o.client;
    return this.matching([...new Set([...(await jobs.workflows()), ...(await queues.workflows())])]);
  }

  private async workflowFilter(): Promise<Record<string, unknown>> {
    const wfs = await this.consumed();
    return { ...(wfs ? { workflow: { $in: wfs } } : {}), ...this.tagFilter.query() };
  }

  /**
   * Exits when nothing is left that this launcher could run: nothing
   * runnable that fits its time and nodes, nothing active anywhere that could
   * release children, nothing waiting on parents that could still finish.
   */
  private async checkIdle(): Promise<void> {
    if (this.state !== "running" || this.o.persistent) return;
    if (this.running.size > 0 || this.pool.busy() || this.pool.waiting() > 0) return;
    if (Date.now() - this.lastActivity < this.o.idleCheckMs) return;
    const { store, queues } = this.o.client;
    // Entries waiting in Redis will arrive: no need to ask MongoDB, whose
    // queries here scan the collection on FerretDB (~1 s per 10k jobs).
    const wfs = this.o.workflows ?? [...this.workers.keys()];
    // (Not for a tagged launcher: the entries may all be others'.)
    if (!this.tagFilter.active) for (const wf of wfs) if ((await queues.waiting(wf)) > 0) return;
    if (Date.now() < this.nextStoreCheck) return;
    this.nextStoreCheck = Date.now() + 2 * SECOND;
    const wf = await this.workflowFilter();
    const left = this.minutesLeft();
    const fit: Record<string, unknown> = { ...wf, state: { $in: [...RUNNABLE_STATES] } };
    if (Number.isFinite(left)) fit.wallTimeMinutes = { $lte: left };
    Object.assign(fit, gpuFitFilter(this.pool.maxGpus));
    if (this.o.jobMode === "mpi") fit.numNodes = { $lte: this.pool.size };
    else {
      fit.numNodes = { $lte: 1 };
      fit.ranksPerNode = { $lte: 1 };
    }
    // Existence, not counts: a scan stops at the first match.
    const exists = async (q: Record<string, unknown>) => (await store.jobs.findOne(q as never, { projection: { _id: 1 } })) !== null;
    if (await exists(fit)) {
      // Runnable in MongoDB but nothing arrives: the queue lost entries (Redis flushed or restarted).
      if (Date.now() - this.lastActivity > 3 * SECOND && Date.now() - this.reconciledAt > 5 * SECOND) {
        this.reconciledAt = Date.now();
        const n = await reenqueueRunnable(store, queues, await this.consumed());
        this.log(`nothing arrived while jobs are runnable: re-offered ${n} queue entries`);
      }
      return;
    }
    if (await exists({ ...wf, state: { $in: [...ACTIVE_STATES] } })) return;
    const waiting = await store.jobs.find({ ...wf, state: { $in: [...WAITING_STATES] } } as never, { projection: { parents: 1 }, limit: 1000 }).toArray();
    if (waiting.length > 0) {
      const parents = [...new Set(waiting.flatMap((w) => w.parents))];
      const moved = await this.o.client.jobs.releaseChildren(parents);
      if (moved > 0) return;
      // Parents outside this launcher's workflows may still finish; those are active elsewhere.
      if (await exists({ _id: { $in: parents }, state: { $nin: ["JOB_FINISHED", "FAILED", "USER_KILLED"] } })) return;
    }
    this.stop("nothing left to run");
  }
}

/** `fn`, called at most once however often the result is. */
function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (!done) fn();
    done = true;
  };
}

/** A RUN_ERROR's message: how the process ended, then the last lines of its output. */
function withTail(why: string, outFile: string): string {
  const tail = outputTail(outFile);
  return tail ? `${why}; output ends: ${tail}` : why;
}

function describe(o: RunOutcome): string {
  if (o.spawnError) return `could not start: ${o.spawnError}`;
  if (o.lost) return o.lost;
  if (o.timedOut) return "timed out";
  if (o.signal) return `killed by ${o.signal}`;
  return `exit code ${o.exitCode}`;
}
