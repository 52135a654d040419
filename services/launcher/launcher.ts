import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { coerceError } from "../../libs/errors/index.js";
import { redactUrl } from "../../libs/config/index.js";
import { KILL_CHANNEL } from "../../libs/client/index.js";
import { WORKFLOWS_CHANNEL } from "../../libs/queue/index.js";
import { beatLauncher, markLauncherExited, registerLauncher } from "../../libs/store/index.js";
import { nodeGpuIds } from "../../libs/platform/index.js";
import { NodePool } from "./pool.js";
import { TransitionWriter } from "./writer.js";
import { ProcessSupervisor } from "./runner.js";
import { Fence } from "./fence.js";
import { SECOND, resolveOptions, type LauncherOptions, type ResolvedOptions } from "./options.js";
import { Completion, type LauncherSummary } from "./completion.js";
import { CommandBuilder } from "./command.js";
import { LeaseKeeper } from "./leases.js";
import { IdleCheck } from "./idle.js";
import { Execution } from "./execution.js";
import { Dispatch } from "./dispatch.js";
import { costs, emptySlots } from "./costs.js";
import { KILLS_HEARD, type Core, type Running } from "./core.js";

export type { LauncherOptions, LauncherSummary };

/** INITIALIZED → RUNNING → STOPPING → STOPPED, as Temporal's worker states. */
type LifecycleState = "initialized" | "running" | "stopping" | "stopped";

/**
 * A launcher: pulls runnable jobs from its workflows' queues, takes a lease
 * on each in MongoDB, runs it, and records every transition. Redis entries are
 * completed once the lease is taken; from then on the lease is what protects
 * the job (DESIGN §5–6). This file is its lifecycle; the rooms it wires
 * together are dispatch (entries → jobs), execution (runs, with plan.ts
 * deciding what is recorded), leases, completion, idle detection and costs.
 */
export class Launcher implements Core {
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  readonly o: ResolvedOptions;
  readonly pool: NodePool;
  readonly writer: TransitionWriter;
  readonly fence: Fence;
  readonly completion: Completion;
  readonly commands: CommandBuilder;
  readonly running = new Map<string, Running>();
  readonly killsHeard = new Set<string>();
  private readonly tasks = new Set<Promise<void>>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly deadline: number | undefined;
  private readonly cpuAtStart = process.cpuUsage();
  private readonly leases: LeaseKeeper;
  private readonly dispatch: Dispatch;
  private readonly idle: IdleCheck;
  private state: LifecycleState = "initialized";
  private reason = "";
  private stopResolve: (() => void) | undefined;
  private closing: Promise<void> | undefined;
  private unsubscribe: Array<() => Promise<void>> = [];
  private processes: ProcessSupervisor | undefined;

  private readonly onStop: ((reason: string, running: boolean) => void) | undefined;

  constructor(opts: LauncherOptions) {
    const o = (this.o = resolveOptions(opts));
    this.onStop = opts.onStop;
    const log = (l: string) => this.log(l);
    this.pool = new NodePool(
      o.nodes.map((n) => ({ host: n.host, gpuIds: nodeGpuIds(n) })),
      o.jobMode,
    );
    // Quiet: no job process running (a job gives its slot back before it writes how it ended), none waiting for a
    // slot, and the queues found empty: under load (a queue with entries) a gathering waits as it always did.
    this.writer = new TransitionWriter(o.client.store, {
      behind: { at: o.writeBacklog, say: (n) => this.dispatch.sayBehind(n) },
      quiet: () => !this.pool.busy() && this.pool.waiting() === 0 && this.dispatch.drained(),
      saturated: () => this.pool.waiting() > 0 || !this.dispatch.drained(),
    });
    this.fence = new Fence({
      store: o.client.store,
      owner: this.owner,
      leaseTtlMs: o.leaseTtlMs,
      lockDurationMs: o.lockDurationMs,
      termLeadMs: o.termLeadMs,
      log,
      move: (ids, deadline) => this.processes?.moveDeadlines(ids, deadline),
    });
    this.completion = new Completion(o.client, log);
    this.commands = new CommandBuilder({ dbPath: o.dbPath, nodes: o.nodes, jobMode: o.jobMode, mpiKind: o.mpiKind, gpuVendor: o.gpuVendor, owner: this.owner });
    this.leases = new LeaseKeeper(
      {
        // Jobs running ahead of their claim have no lease to renew.
        claimedJobIds: () => [...this.running.values()].filter((r) => r.claimed).map((r) => r.job._id),
        beat: () => beatLauncher(o.client.store, this.owner, this.running.size),
        pauseFetching: (pause) => this.dispatch.pause(pause),
        active: () => this.active(),
        log,
      },
      this.fence,
      o.client,
      o.maxLeaseLapses,
    );
    this.dispatch = new Dispatch(this, new Execution(this), this.leases);
    this.idle = new IdleCheck({
      o,
      busy: () => this.running.size > 0 || this.pool.busy() || this.pool.waiting() > 0,
      lastActivity: () => this.dispatch.lastActivity,
      workerWorkflows: () => this.dispatch.workflows(),
      poolSize: () => this.pool.size,
      poolMaxGpus: () => this.pool.maxGpus,
      minutesLeft: () => this.minutesLeft(),
      active: () => this.active(),
      stop: (why) => this.stop(why),
      log,
    });
    this.deadline = o.timeLimitMinutes === undefined ? undefined : Date.now() + o.timeLimitMinutes * 60 * SECOND;
  }

  log(line: string): void {
    this.o.log(redactUrl(`[launcher ${this.owner}] ${line}`));
  }

  minutesLeft(): number {
    return this.deadline === undefined ? Infinity : (this.deadline - Date.now()) / 60_000;
  }

  active(): boolean {
    return this.state === "running";
  }

  stopReason(): string {
    return this.reason;
  }

  supervisor(): ProcessSupervisor {
    if (!this.processes) throw new Error("the launcher is not running");
    return this.processes;
  }

  touch(): void {
    this.dispatch.lastActivity = Date.now();
  }

  track(task: Promise<void>, id: string): void {
    const t = task.catch((err: unknown) => this.log(`job ${id}: ${coerceError(err).message}`));
    this.tasks.add(t);
    void t.finally(() => this.tasks.delete(t));
  }

  /** A job's own script may restart it (RESTART_READY) while its run is still winding down here: the newer attempt keeps its place. */
  untrack(r: Running): void {
    if (this.running.get(r.job._id) !== r) return;
    this.running.delete(r.job._id);
    this.fence.forget(r.job._id);
  }

  /** Runs until nothing is left (unless persistent), the time limit, or stop(). */
  async run(): Promise<LauncherSummary> {
    if (this.state !== "initialized") throw new Error("a launcher runs once");
    this.state = "running";
    const o = this.o;
    const { store, queues } = o.client;
    await this.fence.sync();
    await registerLauncher(store, {
      _id: this.owner,
      host: hostname(),
      pid: process.pid,
      mode: o.jobMode,
      // The exact names, or the parts of names it matches (0.x's --wf-filter).
      workflows: o.workflows ?? o.workflowParts ?? null,
      nodes: o.nodes.map((n) => n.host),
      startedAt: new Date(),
      heartbeat: new Date(),
      state: "running",
    });
    this.unsubscribe.push(await queues.subscribe(KILL_CHANNEL, (id) => this.onKill(id)));
    this.processes = ProcessSupervisor.start((l) => this.log(l), { fence: this.fence, termLeadMs: this.fence.termLeadMs });
    const which = o.workflows?.join(",") ?? (o.workflowParts ? `containing ${o.workflowParts.join(" or ")}` : "(all)");
    const stopped = new Promise<void>((r) => (this.stopResolve = r));
    const discover = () => this.dispatch.refreshWorkers();
    // Before the first look: a workflow queued in between is heard of, not found at the next poll.
    if (o.workflows === undefined) {
      this.unsubscribe.push(await queues.subscribe(WORKFLOWS_CHANNEL, () => void discover().catch((err: unknown) => this.log(`discovering workflows failed: ${coerceError(err).message}`))));
    }
    // Armed before the first look at the queues: a launcher whose servers stop answering as it starts
    // still stops at its time limit (a stop test froze them there and saw it wait for the driver's timeout).
    if (this.deadline !== undefined) this.timers.push(setTimeout(() => this.stop("time limit reached"), Math.max(0, this.deadline - Date.now())));
    this.log(`started: ${o.jobMode} mode on ${o.nodes.length} node(s), workflows ${which}, time limit ${o.timeLimitMinutes === undefined ? "none" : `${o.timeLimitMinutes} min`}`);
    const firstLook = (async () => {
      await discover();
      await this.leases.recover();
    })();
    // Failing before a stop fails the run, as it always did; once stopped, the stop goes ahead without it.
    firstLook.catch(() => undefined);
    await Promise.race([firstLook, stopped]).catch((err: unknown) => {
      // The time limit's timer would hold a process whose run has failed.
      for (const t of this.timers) clearTimeout(t);
      throw err;
    });
    if (this.state === "running") {
      this.every(this.fence.renewEveryMs, () => this.leases.heartbeat());
      // Jittered so many launchers do not sweep in step.
      this.every(Math.max(500, Math.floor(o.leaseTtlMs / 2 + Math.random() * 1000)), () => this.leases.recover());
      this.every(o.idleCheckMs, () => this.idle.check());
      if (o.workflows === undefined) this.every(2 * SECOND, discover);
    }
    await stopped;
    await this.close();
    this.completion.summary.reason = this.reason;
    return this.completion.summary;
  }

  /** One run at a time: on a large FerretDB database a count can outlast the interval. */
  private every(ms: number, fn: () => Promise<void>): void {
    let busy = false;
    const t = setInterval(() => {
      if (busy) return;
      busy = true;
      fn()
        .catch((err: unknown) => {
          // A task cut short by shutdown closing the connections is not news.
          if (this.active()) this.log(`background task failed: ${coerceError(err).message}`);
        })
        .finally(() => (busy = false));
    }, ms);
    this.timers.push(t);
  }

  /** Asks the launcher to stop: running jobs are ended as timed out (RESTART_READY when allowed). */
  stop(reason: string): void {
    if (this.state !== "running") return;
    this.state = "stopping";
    this.reason = reason;
    this.log(`stopping: ${reason}`);
    this.onStop?.(reason, this.running.size > 0);
    this.stopResolve?.();
  }

  /** Ends the running jobs, records them, and lets go of everything; safe to call twice (the second call waits for the first). */
  close(): Promise<void> {
    if (this.state === "initialized") {
      this.state = "stopping";
      this.reason = "closed";
    }
    this.stop("closed");
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.pool.close();
    for (const r of this.running.values()) {
      r.timedOut = true;
      r.handle?.terminate(this.o.killGraceMs);
    }
    await this.step("closing the queue consumers", this.dispatch.close());
    while (this.tasks.size > 0) await this.step(`waiting for ${this.tasks.size} job task(s)`, Promise.all([...this.tasks]));
    await this.step("announcing finished jobs", this.completion.flush());
    await this.step("writing the last state changes", this.writer.close());
    await this.step("stopping the spawn helper", this.processes?.close());
    for (const u of this.unsubscribe) await this.step("unsubscribing", u());
    await this.step("marking the launcher exited", markLauncherExited(this.o.client.store, this.owner).catch(() => undefined));
    this.state = "stopped";
    const s = this.completion.summary;
    this.log(`stopped (${this.reason}): ${s.finished} finished, ${s.failed} failed, ${s.restarted} to restart, ${s.killed} killed; ${costs(this.o.client.store, s, this.cpuAtStart, this.processes?.spawnCpuMs() ?? 0, this.processes?.watchdogCpuMs() ?? 0, this.processes?.jobsCpuMs() ?? 0)}${emptySlots(this.pool.emptyShare())}`);
  }

  /** One step of the shutdown; one that takes long says which it is, so a hang names itself. */
  private async step<T>(what: string, p: Promise<T> | undefined): Promise<T | undefined> {
    const t = setInterval(() => this.log(`shutdown: still ${what}`), 10 * SECOND);
    try {
      return await p;
    } finally {
      clearInterval(t);
    }
  }

  private onKill(id: string): void {
    const r = this.running.get(id);
    if (!r) {
      this.killsHeard.add(id);
      if (this.killsHeard.size > KILLS_HEARD) this.killsHeard.delete(this.killsHeard.values().next().value!);
      return;
    }
    r.killed = true;
    this.log(`job ${id}: kill requested`);
    r.handle?.terminate(this.o.killGraceMs);
  }
}
