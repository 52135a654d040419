import type { Job } from "../models/index.js";
import { BalsamError, UsageError } from "../errors/index.js";
import { finalAmong, type Store } from "../store/index.js";
import type { JobQueues } from "../queue/index.js";
import { FINISHED_CHANNEL, parseFinished, type FinishedJob } from "../queue/index.js";

export { parseFinished, type FinishedJob };

export interface ResultsOptions {
  /** Give up after this long; the iterator then ends (wait() rejects). Default: no limit. */
  timeoutMs?: number;
  /**
   * How often MongoDB is checked as a safety net for announcements that
   * never came (a launcher lost between recording a job and announcing it).
   * Default 5000. A recheck reads every pending job, so rechecks are spaced
   * at least {@link RECHECK_DUTY} times as long as the last one took (a
   * watcher of 100,000 pending jobs rechecks about every 75 s here, not every
   * 5 s); and one runs at once whenever the subscription comes back from a
   * lost Redis connection, when announcements are most likely missed.
   */
  recheckMs?: number;
}

/**
 * A recheck takes at most 1/RECHECK_DUTY of the time: measured here, reading
 * 100,000 pending jobs took 1.5 s of the database server's CPU, so rechecking
 * them every 5 s cost it 27% of a core while the jobs waited to run.
 */
export const RECHECK_DUTY = 50;

/** When the next recheck is due, `tookMs` after the last one started. */
export function recheckDelayMs(recheckMs: number, tookMs: number): number {
  return Math.max(recheckMs, RECHECK_DUTY * tookMs);
}

export interface WatchOptions {
  /** As in {@link ResultsOptions.recheckMs}. Default 5000. */
  recheckMs?: number;
  /**
   * Announcements heard for jobs not (yet) watched are kept, up to this many,
   * so a job that finishes before `add()` names it is still delivered by
   * push. Default 10 000.
   */
  keepUnwatched?: number;
}

export interface AddOptions {
  /**
   * Read MongoDB for the added jobs that are already final. Default true.
   * Jobs created after the watcher opened can skip it: their announcements
   * cannot have been missed.
   */
  checkStore?: boolean;
}

function fromDoc(j: Pick<Job, "_id" | "name" | "workflow" | "state" | "data">): FinishedJob {
  return { id: j._id, name: j.name, workflow: j.workflow, state: j.state, result: j.data?.result };
}

// setTimeout fires at once for delays above 2^31-1 ms (with a warning), which
// would turn a "never recheck" into a busy loop.
const MAX_TIMER_MS = 2 ** 31 - 1;
const STORE_CHUNK = 1000;

/**
 * Delivers finished jobs from a set that can grow while it runs — what a
 * search that keeps K evaluations in flight needs: open it once, `add()` each
 * new evaluation, take results with `next()` or `for await`. Results are
 * pushed through Redis by the launcher that recorded them; MongoDB is read
 * only for jobs that were final before they were added and, every
 * `recheckMs`, for announcements lost while Redis was down. Each id is
 * delivered once. One consumer at a time.
 *
 * ```ts
 * const w = await balsam.watch();
 * const [job] = await balsam.jobs.addMany([{ name: "task0", workflow: "TEST", application: "run" }]);
 * await w.add([job._id], { checkStore: false });
 * const r = await w.next({ timeoutMs: 60_000 });
 * await w.close();
 * ```
 */
export class ResultWatcher implements AsyncIterable<FinishedJob> {
  private readonly watched = new Set<string>();
  private readonly unwatched = new Map<string, FinishedJob>();
  private readonly inbox: FinishedJob[] = [];
  private readonly recheckMs: number;
  private readonly keepUnwatched: number;
  private unsubscribe: (() => Promise<void>) | undefined;
  private wake: (() => void) | undefined;
  private nextCheck = 0;
  private waiting = false;
  private closed = false;

  private constructor(
    private readonly store: Store,
    opts: WatchOptions,
  ) {
    this.recheckMs = opts.recheckMs ?? 5000;
    this.keepUnwatched = opts.keepUnwatched ?? 10_000;
    this.nextCheck = Date.now() + this.recheckMs;
  }

  /** Subscribes before returning, so every job added afterwards is announced to it. */
  static async open(store: Store, queues: JobQueues, opts: WatchOptions = {}): Promise<ResultWatcher> {
    const w = new ResultWatcher(store, opts);
    w.unsubscribe = await queues.subscribe(FINISHED_CHANNEL, (msg) => w.hear(msg), { resumed: () => w.resumed() });
    return w;
  }

  /** The subscription is back after a lost connection: what was announced meanwhile is looked for now. */
  private resumed(): void {
    this.nextCheck = 0;
    this.wake?.();
  }

  /** Jobs added and not yet delivered. */
  get pending(): number {
    return this.watched.size;
  }

  private hear(msg: string): void {
    for (const f of parseFinished(msg)) this.heard(f);
  }

  private heard(f: FinishedJob): void {
    if (this.watched.has(f.id)) {
      this.deliver(f);
      return;
    }
    this.unwatched.delete(f.id);
    this.unwatched.set(f.id, f);
    if (this.unwatched.size > this.keepUnwatched) {
      const oldest = this.unwatched.keys().next().value;
      if (oldest !== undefined) this.unwatched.delete(oldest);
    }
  }

  private deliver(f: FinishedJob): void {
    if (!this.watched.has(f.id)) return;
    this.inbox.push(f);
    this.wake?.();
  }

  /** Starts watching `ids`; those already final are delivered by the next `next()`. */
  async add(ids: readonly string[], opts: AddOptions = {}): Promise<void> {
    if (this.closed) throw new UsageError("this result watcher is closed");
    const fresh: string[] = [];
    for (const id of ids) {
      if (this.watched.has(id)) continue;
      this.watched.add(id);
      const heard = this.unwatched.get(id);
      if (heard) {
        this.unwatched.delete(id);
        this.deliver(heard);
      } else {
        fresh.push(id);
      }
    }
    if (opts.checkStore === false || fresh.length === 0) return;
    // Reading every job pending (wait()'s one add) is a recheck.
    if (fresh.length === this.watched.size) await this.recheck(fresh);
    else await this.checkStore(fresh);
  }

  /**
   * Reads `ids`, every job pending, from MongoDB; the next recheck is due as
   * the cost of this one says, unless a resume during it asked for another.
   * A read that fails leaves the recheck due, so the next `next()` tries again.
   */
  private async recheck(ids: readonly string[]): Promise<void> {
    const due = this.nextCheck;
    const t0 = Date.now();
    this.nextCheck = Infinity;
    try {
      await this.checkStore(ids);
    } catch (err) {
      if (this.nextCheck === Infinity) this.nextCheck = due;
      throw err;
    }
    if (this.nextCheck === Infinity) this.nextCheck = t0 + recheckDelayMs(this.recheckMs, Date.now() - t0);
  }

  private async checkStore(ids: readonly string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += STORE_CHUNK) {
      const done = await finalAmong(this.store, ids.slice(i, i + STORE_CHUNK));
      for (const d of done) this.deliver(fromDoc(d));
    }
  }

  /**
   * The next finished job; undefined when nothing is pending, after
   * `timeoutMs`, or once closed. `timeoutMs: 0` takes only what has already
   * arrived, so a caller can gather everything that came in meanwhile.
   */
  async next(opts: { timeoutMs?: number } = {}): Promise<FinishedJob | undefined> {
    if (this.waiting) throw new UsageError("next() is already waiting: a result watcher has one consumer");
    this.waiting = true;
    const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
    try {
      for (;;) {
        while (this.inbox.length > 0) {
          const f = this.inbox.shift()!;
          if (this.watched.delete(f.id)) return f;
        }
        if (this.closed || this.watched.size === 0) return undefined;
        const now = Date.now();
        if (now >= deadline) return undefined;
        if (now >= this.nextCheck) {
          await this.recheck([...this.watched]);
          continue;
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(MAX_TIMER_MS, Math.min(deadline, this.nextCheck) - now));
          t.unref();
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = undefined;
      }
    } finally {
      this.waiting = false;
    }
  }

  /** Yields until nothing added is pending. */
  async *[Symbol.asyncIterator](): AsyncGenerator<FinishedJob> {
    for (;;) {
      const f = await this.next();
      if (!f) return;
      yield f;
    }
  }

  /** Unsubscribes; a waiting `next()` returns undefined. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wake?.();
    await this.unsubscribe?.();
  }
}

/**
 * Yields each of `ids` once, as it reaches a final state: pushed through
 * Redis by the launcher that recorded it (no polling), with jobs that were
 * already final yielded first from MongoDB. Subscribes on the first `next()`.
 */
export async function* watchResults(store: Store, queues: JobQueues, ids: readonly string[], opts: ResultsOptions = {}): AsyncGenerator<FinishedJob> {
  if (ids.length === 0) return;
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  const w = await ResultWatcher.open(store, queues, { recheckMs: opts.recheckMs });
  try {
    await w.add(ids);
    while (w.pending > 0) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      const f = await w.next(Number.isFinite(left) ? { timeoutMs: left } : {});
      if (!f) return;
      yield f;
    }
  } finally {
    await w.close();
  }
}

/**
 * Resolves with every job of `ids` once all are final; rejects after
 * `timeoutMs` with a RUNTIME error (exit code 1 in the CLI, not a usage error).
 */
export async function waitForJobs(store: Store, queues: JobQueues, ids: readonly string[], opts: ResultsOptions = {}): Promise<FinishedJob[]> {
  const out: FinishedJob[] = [];
  for await (const f of watchResults(store, queues, ids, opts)) out.push(f);
  const want = new Set(ids).size;
  if (out.length < want) {
    throw new BalsamError("RUNTIME", `timed out after ${opts.timeoutMs} ms: ${want - out.length} of ${want} jobs not finished`);
  }
  return out;
}
