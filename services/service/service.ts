import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { releaseChildren, recoverLapsedLeases, reenqueueRunnable, type Balsam } from "../../libs/client/index.js";
import { resolveMaxLeaseLapses, type ServicePolicy } from "../../libs/config/index.js";
import { ConfigError, ConflictError, coerceError, errorLine } from "../../libs/errors/index.js";
import { OPEN_LAUNCH_STATES, launcherMinutes, type SchedulerAdapter } from "../../libs/platform/index.js";
import { acquireServiceLock, releaseServiceLock, renewServiceLock, type ServiceLockDoc } from "../../libs/store/service-lock.js";
import { finalIds, launchesIn, parentsOfWaiting, runnableBySize, runnableByWorkflow } from "../../libs/store/index.js";
import { MaybeQueuedError, refreshLaunchStates, resolveSubmitLaunchOptions, submitLaunch, type ResolvedSubmitLaunch } from "./launches.js";
import { decideLaunch, type WorkBucket } from "./policy.js";

const SECOND = 1000;

export interface ServiceOptions {
  client: Balsam;
  dbPath: string;
  scheduler: SchedulerAdapter;
  policy: ServicePolicy;
  /** Seconds between passes. Default: the policy's `intervalSeconds`. */
  intervalSeconds?: number;
  /** A lock whose heartbeat is older than this belongs to a dead service. Default max(30 s, 4 intervals). */
  lockStaleMs?: number;
  /** Every this many passes, every runnable job is offered again even when the counts agree. Default 12. */
  fullSweepEvery?: number;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

export interface PassSummary {
  released: number;
  recovered: number;
  reoffered: number;
  launchChanges: number;
  submitted: string | null;
}

/** One pass of the service fails one step at a time; the others still run. */
type Step = () => Promise<void>;

/** The longest a service waits after failed submissions before it tries again. */
export const MAX_SUBMIT_HOLD_MS = 10 * 60 * SECOND;

/**
 * How long a service submits nothing after `failures` failed submissions in
 * a row: twice the interval, doubling with each, at most 10 min. A
 * scheduler refusing every launch (a queue limit, a bad account) is not
 * asked again every few seconds, which sites take for abuse. A submission
 * that may have queued its launch all the same (`maybeQueued`: no answer in
 * time, or no id to read) holds the longest at once: another one now could
 * be a second allocation for the same work, each pass.
 */
export function submitHoldMs(failures: number, intervalMs: number, maybeQueued: boolean): number {
  if (maybeQueued) return MAX_SUBMIT_HOLD_MS;
  return Math.min(MAX_SUBMIT_HOLD_MS, intervalMs * 2 ** Math.min(failures, 30));
}

/**
 * `balsam service`: one per database, held by a lock document. Each pass
 * releases children of finished parents, recovers lapsed leases, puts
 * runnable jobs missing from Redis back in their queues, refreshes launch
 * states, and submits a launcher when the policy says so.
 */
export class BalsamService {
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  private state: "created" | "running" | "stopping" | "stopped" = "created";
  private readonly intervalMs: number;
  private readonly staleMs: number;
  private readonly fullSweepEvery: number;
  private readonly maxLeaseLapses: number;
  private readonly log: (line: string) => void;
  private passes = 0;
  private lastDecision = "";
  private lastErrors = new Map<string, string>();
  /** No submission before this (ms since the epoch): the last ones failed (submitHoldMs). */
  private submitHoldUntil = 0;
  private submitFailures = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  /** Aborted by stop(), with its reason: ends the wait between passes at once. */
  private readonly stopping = new AbortController();

  constructor(private readonly o: ServiceOptions) {
    this.intervalMs = (o.intervalSeconds ?? o.policy.intervalSeconds) * SECOND;
    this.staleMs = o.lockStaleMs ?? Math.max(30 * SECOND, 4 * this.intervalMs);
    this.fullSweepEvery = o.fullSweepEvery ?? 12;
    this.maxLeaseLapses = resolveMaxLeaseLapses(o.client.settings, o.env);
    this.log = o.log ?? ((l) => process.stderr.write(l + "\n"));
  }

  /** Takes the database's service lock or throws a ConflictError naming the holder. */
  async start(): Promise<void> {
    if (this.state !== "created") throw new Error("a service starts once");
    // A policy the launches could never be submitted with is refused now, not logged every pass.
    if (this.o.policy.autoSubmit) this.launchOptions(1);
    const res = await acquireServiceLock(this.o.client.store, { owner: this.owner, host: hostname(), pid: process.pid }, this.staleMs, isDeadHere);
    if (!res.acquired) {
      const h = res.holder;
      const ago = Math.round((Date.now() - h.heartbeat.getTime()) / SECOND);
      throw new ConflictError(`another balsam service is running for this database: pid ${h.pid} on host ${h.host} (heartbeat ${ago} s ago)`, {
        hint: `stop it first (kill ${h.pid} on ${h.host}); a service that died is replaced after ${Math.round(this.staleMs / SECOND)} s`,
      });
    }
    this.state = "running";
    // Renewed on its own timer: a long pass (a slow scheduler) must not let the lock go stale.
    this.heartbeatTimer = setInterval(() => {
      renewServiceLock(this.o.client.store, this.owner)
        .then((mine) => {
          if (!mine) this.stop("lost the service lock to another service");
        })
        .catch((err: unknown) => this.log(`renewing the service lock failed: ${coerceError(err).message}`));
    }, Math.max(SECOND, Math.floor(this.staleMs / 4)));
    const p = this.o.policy;
    this.log(
      `service ${this.owner} started: scheduler ${this.o.scheduler.name}, every ${this.intervalMs / SECOND} s; policy: ` +
        (p.autoSubmit
          ? `queue ${p.queue}, project ${p.project || "(default)"}, ${p.jobMode} mode, at most ${p.maxQueuedLaunches} launch(es) of at most ${p.maxNodes} node(s) for ${p.wallTimeMinutes} min, from ${p.minRunnableJobs} runnable job(s), workflows ${p.wfFilter.length ? p.wfFilter.join(",") : "(all)"}`
          : "no auto-submission"),
    );
  }

  /** Runs passes until stop(). */
  async run(): Promise<void> {
    if (this.state === "created") await this.start();
    while (this.state === "running") {
      await this.pass();
      if (this.state !== "running") break;
      // Rejects (AbortError) only when stop() cuts the wait short.
      await sleep(this.intervalMs, undefined, { signal: this.stopping.signal }).catch(() => undefined);
    }
    await this.close();
  }

  stop(reason: string): void {
    if (this.state !== "running") return;
    this.state = "stopping";
    this.log(`stopping: ${reason}`);
    this.stopping.abort(reason);
  }

  /** Releases the lock; safe to call twice. */
  async close(): Promise<void> {
    if (this.state === "stopped" || this.state === "created") return;
    this.state = "stopped";
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    await releaseServiceLock(this.o.client.store, this.owner).catch((err: unknown) => this.log(`releasing the service lock failed: ${coerceError(err).message}`));
    const reason = this.stopping.signal.reason as string | undefined;
    this.log(`service ${this.owner} stopped${reason ? ` (${reason})` : ""}`);
  }

  /** One pass; each step's failure is logged and the next step still runs. */
  async pass(): Promise<PassSummary> {
    this.passes++;
    const s: PassSummary = { released: 0, recovered: 0, reoffered: 0, launchChanges: 0, submitted: null };
    const steps: Array<[string, Step]> = [
      ["releasing children", async () => {
        s.released = await this.releaseChildren();
      }],
      ["recovering lapsed leases", async () => {
        s.recovered = await this.recoverLeases();
      }],
      ["re-enqueueing runnable jobs", async () => {
        s.reoffered = await this.reenqueue();
      }],
      ["refreshing launch states", async () => {
        s.launchChanges = await this.refreshLaunches();
      }],
      ["submitting a launcher", async () => {
        s.submitted = await this.maybeSubmit();
      }],
    ];
    for (const [what, step] of steps) {
      try {
        await step();
        this.lastErrors.delete(what);
      } catch (err) {
        const msg = coerceError(err).message;
        // A scheduler that stays down would otherwise fill the log every few seconds.
        if (this.lastErrors.get(what) !== msg) this.log(`${what} failed: ${msg}`);
        this.lastErrors.set(what, msg);
      }
    }
    return s;
  }

  private async releaseChildren(): Promise<number> {
    const { store } = this.o.client;
    const parents = await parentsOfWaiting(store, { states: ["AWAITING_PARENTS"], limit: 10_000 });
    if (parents.length === 0) return 0;
    const done = await finalIds(store, parents);
    if (done.length === 0) return 0;
    const moved = await releaseChildren(this.o.client, done);
    if (moved > 0) this.log(`released ${moved} child job(s) of ${done.length} finished parent(s)`);
    return moved;
  }

  private async recoverLeases(): Promise<number> {
    const ids = await recoverLapsedLeases(this.o.client.store, this.o.client.queues, { maxLeaseLapses: this.maxLeaseLapses });
    if (ids.length) this.log(`recovered ${ids.length} job(s) whose launcher's lease lapsed: ${ids.slice(0, 5).join(", ")}${ids.length > 5 ? ", ..." : ""}`);
    return ids.length;
  }

  /**
   * Compares each workflow's runnable jobs in MongoDB with its queue's
   * entries and offers the jobs again where the queue has fewer (a flushed
   * or restarted Redis). Offering is idempotent but costs one addBulk per
   * 2,000 jobs, so the full sweep runs only every `fullSweepEvery` passes, to
   * catch entries lost while the counts happen to agree.
   */
  private async reenqueue(): Promise<number> {
    const { store, queues } = this.o.client;
    const rows = await runnableByWorkflow(store);
    const full = this.passes % this.fullSweepEvery === 1 || this.fullSweepEvery === 1;
    let total = 0;
    for (const r of rows) {
      const pending = await queues.pending(r.workflow);
      if (!full && pending >= r.n) continue;
      // Fewer entries than jobs: chunks (an entry offers up to CHUNK_SIZE jobs), or entries lost. Redis says which, from
      // the entries themselves: counting the chunks in MongoDB read every runnable job (15 s of FerretDB's CPU per 20,000).
      const offered = pending >= r.n ? r.n : await queues.offered(r.workflow);
      if (!full && offered >= r.n) continue;
      const n = await reenqueueRunnable(store, queues, [r.workflow]);
      total += n;
      if (offered < r.n) this.log(`workflow ${r.workflow}: ${r.n} runnable job(s) but ${offered} offered by ${pending} queue entries: offered ${n} again`);
    }
    return total;
  }

  private async refreshLaunches(): Promise<number> {
    const res = await refreshLaunchStates(this.o.client.store, this.o.env);
    for (const c of res.changes) this.log(`launch ${c.launch._id} (${c.launch.scheduler} ${c.launch.schedulerId}): ${c.from} → ${c.to}`);
    if (res.errors.length) throw new Error(res.errors.join("; "));
    return res.changes.length;
  }

  private async runnableWork(): Promise<{ buckets: WorkBucket[]; tooLong: number }> {
    const p = this.o.policy;
    return runnableBySize(this.o.client.store, p.wfFilter, launcherMinutes(p.wallTimeMinutes));
  }

  private launchOptions(nodes: number): ResolvedSubmitLaunch {
    const p = this.o.policy;
    try {
      return resolveSubmitLaunchOptions({
        nodes,
        queue: p.queue,
        minutes: p.wallTimeMinutes,
        project: p.project,
        jobMode: p.jobMode,
        wfFilter: p.wfFilter.length ? p.wfFilter : undefined,
        schedFlags: p.schedFlags,
      });
    } catch (err) {
      throw new ConfigError(`settings service policy: ${coerceError(err).message}`);
    }
  }

  private async maybeSubmit(): Promise<string | null> {
    const p = this.o.policy;
    if (!p.autoSubmit) return null;
    const { store } = this.o.client;
    const inFlight = await launchesIn(store, OPEN_LAUNCH_STATES);
    const work = await this.runnableWork();
    const d = decideLaunch({ policy: p, runnable: work.buckets, tooLong: work.tooLong, inFlight, gpusPerNode: this.o.client.settings?.gpusPerNode });
    if (!d.submit) {
      if (d.reason !== this.lastDecision) this.log(`not submitting: ${d.reason}`);
      this.lastDecision = d.reason;
      return null;
    }
    this.lastDecision = "";
    if (Date.now() < this.submitHoldUntil) return null;
    this.log(`decision: ${d.reason}`);
    let doc;
    try {
      doc = await submitLaunch(this.o.client, this.o.scheduler, this.launchOptions(d.nodes), { dbPath: this.o.dbPath, env: this.o.env, submittedBy: "service" });
    } catch (err) {
      this.submitFailures++;
      const hold = submitHoldMs(this.submitFailures, this.intervalMs, err instanceof MaybeQueuedError);
      this.submitHoldUntil = Date.now() + hold;
      this.log(`submitting a launcher failed: ${errorLine(err)}; not submitting again for ${Math.round(hold / SECOND)} s (${this.submitFailures} failed submission(s) in a row)`);
      return null;
    }
    this.submitFailures = 0;
    this.log(`submitted launch ${doc._id}: ${doc.scheduler} id ${doc.schedulerId}, ${doc.nodes} node(s), ${doc.wallTimeMinutes} min, script ${doc.scriptPath}`);
    return doc._id;
  }
}

/** A lock held by a process of this host that no longer exists is free at once. */
function isDeadHere(holder: ServiceLockDoc): boolean {
  if (holder.host !== hostname()) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
}
