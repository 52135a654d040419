import { randomUUID } from "node:crypto";
import { recordTransitions, type Store, type Transition } from "../../libs/store/index.js";
import { coerceError } from "../../libs/errors/index.js";

/**
 * Failures worth waiting out — a server away, a replica set changing its
 * primary — as the driver names them; anything else is a bug or bad data.
 */
export function isTransient(err: unknown): boolean {
  const e = err as { name?: string; code?: unknown; writeErrors?: unknown[]; errorLabels?: unknown; err?: { code?: unknown } } | null;
  const name = e?.name ?? "";
  if (/MongoNetworkError|MongoServerSelectionError|MongoNetworkTimeoutError|MongoPoolClearedError|MongoNotConnectedError/.test(name)) return true;
  // The driver's retryable-write set (mongodb lib/error.ts, RETRYABLE_WRITE_ERROR_CODES): a
  // primary stepping down or shutting down, a node not (yet) primary, a network fault the
  // server saw. 4.4+ servers and the driver label them RetryableWriteError; an older server
  // sends the code alone, and a write-concern failure carries it apart (`err`). Our writes are
  // compare-and-set, so retrying one already applied reads as a lost race.
  const RETRYABLE_CODES = [6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436];
  if (Array.isArray(e?.errorLabels) && e.errorLabels.includes("RetryableWriteError")) return true;
  if (RETRYABLE_CODES.includes(e?.code as number) || RETRYABLE_CODES.includes(e?.err?.code as number)) return true;
  // An unordered bulk wraps the network or server-selection error it met (measured on a
  // restarting server: "connect ECONNREFUSED"), copying that error's fields: no server code,
  // no write errors, and the network error's `beforeHandshake` or the selection error's `reason`.
  return name === "MongoBulkWriteError" && !e?.writeErrors?.length && typeof e?.code !== "number" && e !== null && ("beforeHandshake" in e || "reason" in e);
}

/** Writes that follow a bulk of several within this long are taken for a stream (writer.gatherMs). */
const STREAM_GAP_MS = 100;
/** The arrival rate's moving average: each gap's weight, and the most a pause counts (one pause ends a fast stream). */
const GAP_WEIGHT = 0.1;
const GAP_CAP_MS = 1000;

export interface WriterOptions {
  /** How long a lone write waits for others to share its bulk. Default 5 ms. */
  flushMs?: number;
  /** A bulk goes at once when this many wait. Default 500. */
  maxBatch?: number;
  /** How long a gathering waits while writes stream in (see the class). Default 15 ms. */
  streamMs?: number;
  /** Writes a second from which a stream is fast: a gathering then waits up to `fastStreamMs` for `enough` writes. Default 200. */
  fastRate?: number;
  /** How long a gathering waits in a fast stream. Default 60 ms. */
  fastStreamMs?: number;
  /** A gathering goes as soon as this many writes wait. Default 32. */
  enough?: number;
  /** Milliseconds, for the arrival rate; performance.now() unless a test drives it. */
  clock?: () => number;
  /** Told when a write finds `behind.at` or more writes waiting for the database. */
  behind?: { at: number; say: (backlog: number) => void };
  /** True when no other write can come within a window (the launcher's: no job process running or about to start). */
  quiet?: () => boolean;
  /**
   * True while work waits for the launcher's slots (a longer gathering then delays no job's start); the fast window
   * is taken only then. When it turns false (a slot free, nothing to run: a search may be waiting on these results
   * to add more) a gathering in the fast window goes after the stream window instead. Always true when not given.
   */
  saturated?: () => boolean;
}

interface Pending {
  t: Transition;
  resolve: (ok: boolean) => void;
  reject: (e: Error) => void;
}

/**
 * Batches state writes: transitions queued within `flushMs` (or up to
 * `maxBatch`) go to MongoDB in one unordered bulkWrite. Each caller gets its
 * own answer: true when its compare-and-set matched. At ~1000 jobs/s this
 * turns ~2000 single updates a second into a few hundred bulk writes.
 *
 * While writes stream in (the last bulk, sent less than `STREAM_GAP_MS` ago,
 * held more than one), a gathering waits `streamMs` instead: a bulk costs
 * the driver and the server about as much again as each write in it, so
 * bulks twice as large cut both. A lone write (a search adding jobs one at a
 * time) still goes after `flushMs`. And when `quiet()` says no other
 * write can come soon (the launcher has no job process running and none
 * waiting), a gathering does not wait at all, and one already waiting goes
 * on the next tick: there is nothing more to gather, and the search waiting
 * on those results would wait the window for nothing (add → result p50
 * 18–20 → 15 ms, 300 jobs added one at a time).
 *
 * A fast stream (writes arriving at `fastRate` a second or more, as when a
 * launcher runs thousands of short jobs) waits up to `fastStreamMs`, and
 * goes as soon as `enough` writes wait, while `saturated()` says work waits
 * for the launcher's slots: there the bulk's own cost is what limits the
 * rate, and no job waits on the results. A search keeping a number of
 * evaluations in flight leaves slots free while it waits for results: it
 * gets the stream window. Measured on a 2-core VM, a launcher's 5,000 no-op jobs at
 * ~400 a second: bulks of ~8 (15 ms) → ~28 (60 ms) cut the launcher's CPU a
 * job 0.86–0.91 → 0.70 ms and the server's 0.71–0.77 → 0.63 ms. A slower
 * stream keeps the shorter windows: the results a search waits on are not
 * held for a bulk that would not save much.
 */
export class TransitionWriter {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;
  /** Transitions handed to a flush that has not answered yet. */
  private inFlight = 0;
  private roomWaiters: Array<() => void> = [];

  private readonly flushMs: number;
  private readonly maxBatch: number;
  private readonly streamMs: number;
  private readonly fastRate: number;
  private readonly fastStreamMs: number;
  private readonly enough: number;
  private readonly clock: () => number;
  private readonly behind: WriterOptions["behind"];
  private readonly quiet: WriterOptions["quiet"];
  private readonly saturated: () => boolean;
  /** The armed gathering waits the fast window. */
  private fastArmed = false;
  /** Mean gap between writes, ms (moving average; a pause counts as at most `GAP_CAP_MS`). */
  private gapMs = GAP_CAP_MS;
  private lastWriteAt = -Infinity;

  constructor(
    private readonly store: Store,
    o: WriterOptions = {},
  ) {
    this.flushMs = o.flushMs ?? 5;
    this.maxBatch = o.maxBatch ?? 500;
    this.streamMs = o.streamMs ?? 15;
    this.fastRate = o.fastRate ?? 200;
    this.fastStreamMs = o.fastStreamMs ?? 60;
    this.enough = o.enough ?? 32;
    this.clock = o.clock ?? (() => performance.now());
    this.behind = o.behind;
    this.quiet = o.quiet;
    this.saturated = o.saturated ?? (() => true);
  }

  /** Size of the last bulk sent, and when (performance.now()). */
  private lastBulk = { size: 0, at: -Infinity };

  /** How long a gathering that starts now waits for more writes; notes in `fastArmed` whether that is the fast window. */
  private gatherMs(): number {
    this.fastArmed = false;
    if (this.quiet?.()) return 0;
    if (this.gapMs * this.fastRate <= 1000 && this.saturated()) {
      this.fastArmed = true;
      return this.fastStreamMs;
    }
    const streaming = this.lastBulk.size > 1 && this.clock() - this.lastBulk.at < STREAM_GAP_MS;
    return streaming ? Math.max(this.flushMs, this.streamMs) : this.flushMs;
  }

  write(t: Transition): Promise<boolean> {
    if (this.closed) return Promise.reject(new Error("transition writer is closed"));
    const now = this.clock();
    this.gapMs += (Math.min(GAP_CAP_MS, now - this.lastWriteAt) - this.gapMs) * GAP_WEIGHT;
    this.lastWriteAt = now;
    return new Promise((resolve, reject) => {
      this.pending.push({ t, resolve, reject });
      if (this.behind && this.backlog >= this.behind.at) this.behind.say(this.backlog);
      if (this.pending.length >= this.maxBatch) this.kick();
      // The first write of a gathering arms the timer. Writes that find others
      // waiting and no timer are held for the bulk in flight (its timer fired
      // during it) and go when it answers: a new timer would only delay them.
      else if (this.pending.length === 1) this.timer = setTimeout(() => this.kick(false), this.gatherMs());
      else if (this.timer && this.pending.length >= this.enough) this.kick(false);
      // Nothing more can come: the gathering goes on the next tick (writes of this turn still join it).
      else if (this.timer && this.quiet?.()) this.rearm(0);
      // Slots free and nothing to run: the fast window would only hold results back.
      else if (this.timer && this.fastArmed && !this.saturated()) this.rearm(Math.max(this.flushMs, this.streamMs));
    });
  }

  /** The waiting gathering goes `ms` from now instead. */
  private rearm(ms: number): void {
    clearTimeout(this.timer);
    this.fastArmed = false;
    this.timer = setTimeout(() => this.kick(false), ms);
  }

  /**
   * Sends what is pending as one bulk. From the timer (`now` false) it waits
   * while a bulk is in flight: what gathers meanwhile goes as one bulk when
   * that one answers (group commit), not as one bulk per timer tick queued
   * behind it — fewer, larger writes for the same latency.
   */
  private kick(now = true): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!now && this.inFlight > 0) return;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    this.lastBulk = { size: batch.length, at: this.clock() };
    this.inFlight += batch.length;
    // Flushes run one after another so a job's writes land in order.
    this.flushing = this.flushing.then(async () => {
      try {
        await this.flush(batch);
      } finally {
        this.inFlight -= batch.length;
        const waiters = this.roomWaiters;
        this.roomWaiters = [];
        for (const w of waiters) w();
        // Writes waiting with no timer were held back for this answer (kick): they go now, as one bulk.
        if (this.inFlight === 0 && !this.timer && this.pending.length) this.kick();
      }
    });
  }

  /** Transitions waiting for the database: queued or in a bulk it has not answered. */
  get backlog(): number {
    return this.pending.length + this.inFlight;
  }

  /**
   * Resolves once fewer than `limit` transitions wait for the database. A
   * launcher waits here before it takes another job: jobs that run faster
   * than the database records them would otherwise pile up, finished and
   * unrecorded, in its memory (measured: 9,500 of them, 600 MiB, at 100k jobs).
   */
  async room(limit: number = this.maxBatch): Promise<void> {
    while (!this.closed && this.backlog >= limit) await new Promise<void>((r) => this.roomWaiters.push(r));
  }

  private async flush(batch: Pending[]): Promise<void> {
    // The same time and token on every attempt: a bulk the server applied before its answer was lost reads back as written.
    const at = new Date();
    const token = randomUUID();
    for (let attempt = 0; ; attempt++) {
      try {
        const lost = new Set(await recordTransitions(this.store, batch.map((b) => b.t), at, token));
        for (const b of batch) b.resolve(!lost.has(b.t.id));
        return;
      } catch (err) {
        // A restarting server is waited for (about a minute in all); a write
        // it did apply before dropping the answer reads back as written.
        if (isTransient(err) && attempt < 12) {
          await new Promise((r) => setTimeout(r, Math.min(10_000, 250 * 2 ** attempt) * (0.5 + Math.random())));
          continue;
        }
        for (const b of batch) b.reject(coerceError(err));
        return;
      }
    }
  }

  /** Writes what is pending, then refuses new writes. */
  async close(): Promise<void> {
    this.kick();
    await this.flushing;
    this.closed = true;
    for (const w of this.roomWaiters.splice(0)) w();
  }

  async drain(): Promise<void> {
    this.kick();
    await this.flushing;
  }
}
