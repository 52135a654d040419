import { FINISHED_CHANNEL, coerceError, parseFinished, type Balsam, type JobState } from "../../libs/client/index.js";
import { finishFacts, finishTimesSince } from "../../libs/store/views.js";

const MINUTE_MS = 60_000;
/** The throughput chart reaches back one day at most; older minutes are dropped. */
export const MAX_THROUGHPUT_MINUTES = 24 * 60;

export interface FinishedFacts {
  state: JobState;
  runtimeSeconds: number | null;
  /** Seconds from the job's final write to this process hearing of it. */
  latencySeconds: number;
}

/**
 * One subscription to the launchers' "finished" announcements for the whole
 * web process: it counts jobs finished per minute (backfilled from the
 * store at start, so the chart is not empty after a restart) and hands the
 * metrics each finished job's run time and announcement latency, read in
 * one `_id $in` per batch rather than one query per job.
 */
export class FinishedFeed {
  private readonly perMinute = new Map<number, number>();
  private readonly pending = new Map<string, number>();
  private readonly listeners: Array<(f: FinishedFacts) => void> = [];
  private unsubscribe: (() => Promise<void>) | undefined;
  private flushing: Promise<void> | undefined;
  private readonly startedAt = Date.now();
  /** False while past finishes are still being read from the store (minutes at 10⁶ jobs on FerretDB). */
  complete = false;
  private closed = false;

  private constructor(private readonly balsam: Balsam) {}

  static async open(balsam: Balsam): Promise<FinishedFeed> {
    const f = new FinishedFeed(balsam);
    f.unsubscribe = await balsam.queues.subscribe(FINISHED_CHANNEL, (msg) => f.hear(msg));
    void f
      .backfill()
      .then(() => {
        f.complete = true;
      })
      .catch((err: unknown) => {
        // A server stopped while this read ran closed the store under it: nothing to say then.
        if (f.closed) return;
        process.stderr.write(`balsam web: could not read past finishes for the throughput chart: ${coerceError(err).message}\n`);
      });
    return f;
  }

  onFinished(fn: (f: FinishedFacts) => void): void {
    this.listeners.push(fn);
  }

  private async backfill(): Promise<void> {
    const times = await finishTimesSince(this.balsam.store, new Date(this.startedAt - MAX_THROUGHPUT_MINUTES * MINUTE_MS));
    // Finishes after the start are counted as they are heard.
    for (const t of times) if (t.getTime() < this.startedAt) this.count(t.getTime());
  }

  private count(ms: number): void {
    const m = Math.floor(ms / MINUTE_MS) * MINUTE_MS;
    this.perMinute.set(m, (this.perMinute.get(m) ?? 0) + 1);
  }

  private hear(msg: string): void {
    const now = Date.now();
    for (const a of parseFinished(msg)) {
      if (a.state === "JOB_FINISHED") this.count(now);
      this.pending.set(a.id, now);
    }
    if (this.pending.size && this.listeners.length && !this.flushing) this.flushing = this.flush();
  }

  private async flush(): Promise<void> {
    try {
      while (this.pending.size > 0 && !this.closed) {
        const batch = [...this.pending.entries()].slice(0, 1000);
        for (const [id] of batch) this.pending.delete(id);
        const heardAt = new Map(batch);
        const facts = await finishFacts(this.balsam.store, [...heardAt.keys()]);
        for (const f of facts) {
          const at = heardAt.get(f._id) ?? Date.now();
          const out: FinishedFacts = { state: f.state, runtimeSeconds: f.runtimeSeconds, latencySeconds: Math.max(0, (at - f.updatedAt.getTime()) / 1000) };
          for (const l of this.listeners) l(out);
        }
      }
    } catch (err) {
      process.stderr.write(`balsam web: could not read finished jobs for the metrics: ${coerceError(err).message}\n`);
    } finally {
      this.flushing = undefined;
    }
  }

  /** Jobs finished per minute over the last `minutes`, oldest first, every minute present. */
  throughput(minutes: number): Array<{ t: string; finished: number }> {
    const now = Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS;
    const first = now - (minutes - 1) * MINUTE_MS;
    for (const k of this.perMinute.keys()) if (k < now - MAX_THROUGHPUT_MINUTES * MINUTE_MS) this.perMinute.delete(k);
    const out: Array<{ t: string; finished: number }> = [];
    for (let m = first; m <= now; m += MINUTE_MS) out.push({ t: new Date(m).toISOString(), finished: this.perMinute.get(m) ?? 0 });
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flushing;
    await this.unsubscribe?.();
  }
}

export interface StatesBody {
  total: number;
  byState: Partial<Record<JobState, number>>;
  byWorkflow: Record<string, Partial<Record<JobState, number>>>;
}

/** Counts per state and per workflow and state, from one aggregation. */
export async function statesOf(balsam: Balsam, filter: Parameters<Balsam["jobs"]["filter"]>[0] = {}): Promise<StatesBody> {
  const rows = await balsam.jobs.filter(filter).byWorkflowState();
  const body: StatesBody = { total: 0, byState: {}, byWorkflow: {} };
  for (const r of rows) {
    body.total += r.n;
    body.byState[r.state] = (body.byState[r.state] ?? 0) + r.n;
    const wf = (body.byWorkflow[r.workflow] ??= {});
    wf[r.state] = (wf[r.state] ?? 0) + r.n;
  }
  return body;
}

/**
 * The whole database's counts per workflow and state, shared: callers that
 * ask while a count runs get that count (one aggregation, not one each),
 * and a caller may accept a recent one. On FerretDB a count decodes every
 * job (≈23 s at 100k jobs on a loaded 2-core machine), so the dashboard's
 * stream and a Prometheus scrape must not each start their own.
 */
export class JobCounter {
  private inFlight: Promise<StatesBody> | undefined;
  private last: { body: StatesBody; at: number } | undefined;
  /** How long the last count took; 0 before the first. */
  lastDurationMs = 0;

  constructor(private readonly balsam: Balsam) {}

  /** Counts no older than `maxAgeMs` (0: a count started now or running now). */
  async get(maxAgeMs = 0): Promise<StatesBody> {
    if (this.last && maxAgeMs > 0 && Date.now() - this.last.at <= maxAgeMs) return this.last.body;
    if (!this.inFlight) {
      const started = Date.now();
      this.inFlight = statesOf(this.balsam)
        .then((body) => {
          this.lastDurationMs = Date.now() - started;
          this.last = { body, at: started };
          return body;
        })
        .finally(() => {
          this.inFlight = undefined;
        });
    }
    return this.inFlight;
  }
}

/**
 * Recounts the jobs per state while someone listens and tells them when the
 * counts changed. The pause between counts is at least 500 ms and at least
 * twice the last count's duration, so on a database where one aggregation
 * takes seconds (FerretDB at 10⁶ jobs) the dashboard slows down rather than
 * keeping the server busy counting.
 */
export class StatesPoller {
  private readonly subscribers = new Set<(body: StatesBody) => void>();
  private last: string | undefined;
  private lastBody: StatesBody | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private closed = false;

  constructor(
    private readonly counter: JobCounter,
    private readonly minIntervalMs = 500,
  ) {}

  /** Calls `fn` now with the current counts (once known) and on each change; returns the unsubscribe. */
  subscribe(fn: (body: StatesBody) => void): () => void {
    this.subscribers.add(fn);
    if (this.lastBody) fn(this.lastBody);
    if (!this.running && !this.timer) this.schedule(0);
    return () => {
      this.subscribers.delete(fn);
      if (this.subscribers.size === 0) {
        clearTimeout(this.timer);
        this.timer = undefined;
        this.last = undefined;
        this.lastBody = undefined;
      }
    };
  }

  private schedule(ms: number): void {
    if (this.closed || this.subscribers.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.tick();
    }, ms);
  }

  private async tick(): Promise<void> {
    this.running = true;
    const t0 = Date.now();
    try {
      const body = await this.counter.get();
      const key = JSON.stringify(body);
      if (key !== this.last && this.subscribers.size > 0) {
        this.last = key;
        this.lastBody = body;
        for (const fn of this.subscribers) fn(body);
      }
    } catch (err) {
      process.stderr.write(`balsam web: counting jobs failed: ${coerceError(err).message}\n`);
    } finally {
      this.running = false;
    }
    this.schedule(Math.max(this.minIntervalMs, 2 * (Date.now() - t0)));
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.subscribers.clear();
  }
}
