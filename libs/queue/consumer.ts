import { Worker, DelayedError, WaitingError, type Job as BullJob } from "bullmq";
import type { LaunchSnapshot } from "../models/index.js";
import { queueName } from "./names.js";
import { bounded, createRedisClient, type RedisClient } from "./connection.js";
import type { RedisTarget } from "../config/index.js";

/**
 * The queue port a launcher consumes through (pg-boss's worker callbacks,
 * BullMQ's IQueueBackend are the models): entries and a consumer, with
 * nothing of BullMQ showing. Only this folder imports bullmq.
 */

/**
 * Entry data as stored in Redis: the Balsam job id and, optionally, its
 * launch snapshot; or, for a chunk (jobs added together, one entry for
 * several: libs/client/add.ts), the ids of its jobs, which the launcher
 * reads afresh.
 */
export type QueueData = { id: string; s?: LaunchSnapshot; c?: undefined } | { c: string[]; id?: undefined; s?: undefined };

/** One delivery of a queue entry to a consumer. */
export interface QueueEntry {
  /** The Balsam job id (a chunk's: its first job's). */
  readonly id: string;
  /** A chunk's job ids; undefined for an entry of one job. */
  readonly chunk?: readonly string[];
  /** The job as it was queued, when the entry carries it and no consumer died holding it (then it may be stale). */
  readonly snapshot?: LaunchSnapshot;
  /** The entry's own id in the queue, which lock extensions name (ConsumerOptions.onLocksExtended). */
  readonly entryId: string;
  /**
   * Whether this is the entry's first delivery: not given back (deferred)
   * before, no consumer lost holding it. A chunk's snapshots hold only then.
   */
  readonly first: boolean;
  /** When this delivery began (ms since the epoch): the entry's lock runs from then. */
  readonly fetchedAt?: number;
  /** Gives the entry back to be delivered again in `ms`, not completed: the job was not taken. Ends the handler (throws). */
  defer(ms: number): Promise<never>;
  /**
   * Gives the entry back to the head of its queue, for the next consumer to
   * take at once (defer puts it behind the others): its job waited here for
   * room that another launcher may have. Ends the handler (throws).
   */
  giveBack(): Promise<never>;
}

export interface ConsumerOptions {
  /** Entries in hand at once, besides those held (Consumer.hold). */
  concurrency: number;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Entries whose consumer died more often than this while holding them are given up (BullMQ default 1). */
  maxStalledCount?: number;
  drainDelaySeconds?: number;
  onError?: (err: Error) => void;
  /**
   * Told the entries whose locks an extension renewed, with the time it was
   * sent (`performance.now()`, a monotonic clock): each lock now lasts at
   * least `lockDurationMs` from then.
   */
  onLocksExtended?: (entryIds: string[], sentAt: number) => void;
  /** An entry given up on because its consumers kept dying while they held it (maxStalledCount): its job ids. */
  onGivenUp?: (ids: readonly string[]) => void;
}

/** A consumer of one workflow's queue. */
export interface Consumer {
  /** Fetches nothing more until resume(); entries in hand go on. */
  pause(): Promise<void>;
  resume(): void;
  /**
   * `n` more entries may be in hand than the concurrency: entries whose
   * handlers wait on a long job (a job running ahead of its claim holds its
   * entry) do not take the place of new ones. Negative: fewer (at least one).
   */
  hold(n: number): void;
  /**
   * Fetches at once if fewer entries are in hand than the concurrency now
   * allows. BullMQ's loop, once full, waits for an entry in hand to end
   * before it looks again, however much the concurrency grew meanwhile
   * (hold): a chunk's entry ends only when all its jobs have run and are
   * recorded, so without this a launcher whose chunk's jobs got their slots
   * fetched nothing more while they ran (its slots idle a third of the time).
   */
  wake(): void;
  /** True once a fetch found the queue empty, until an entry is taken again. */
  drained(): boolean;
  /** Closes once the handlers in progress have returned. */
  close(): Promise<void>;
}

/** Same Balsam job and attempt → same BullMQ id, so enqueueing twice adds one entry. */
export function bullJobId(id: string, attempt: number): string {
  return `${id}_${attempt}`;
}

/** The entry id of a chunk whose first job is `firstId`: stored on each of its jobs (`chunk`), so offering them again offers the chunk. */
export function chunkEntryId(firstId: string): string {
  return `${firstId}_c`;
}

/** The jobs an entry stands for. */
function idsOf(data: QueueData): string[] {
  return data.c ?? [data.id];
}

/** Whether a failed entry failed because its workers kept dying while they held it. */
function givenUpAsStalled(err: Error): boolean {
  return /stalled more than allowable limit/.test(err.message);
}

function entryOf(job: BullJob<QueueData>, token: string | undefined): QueueEntry {
  const d = job.data;
  return {
    id: d.c ? d.c[0]! : d.id,
    ...(d.c ? { chunk: d.c } : {}),
    snapshot: job.stalledCounter ? undefined : d.s,
    entryId: String(job.id),
    // BullMQ counts every delivery (moveToActive), this one included.
    first: !job.stalledCounter && job.attemptsStarted <= 1,
    fetchedAt: job.processedOn,
    async defer(ms: number): Promise<never> {
      await job.moveToDelayed(Date.now() + ms, token);
      throw new DelayedError();
    },
    async giveBack(): Promise<never> {
      // BullMQ pushes it back where the next fetch takes from (a prioritized entry: among its priority).
      await job.moveToWait(token);
      throw new WaitingError();
    },
  };
}

/**
 * A BullMQ worker on one workflow's queue with its own blocking connection
 * (`maxRetriesPerRequest: null`, as BullMQ requires for workers).
 */
export function startConsumer(target: RedisTarget, prefix: string, connectTimeoutMs: number, workflow: string, handler: (entry: QueueEntry) => Promise<void>, opts: ConsumerOptions): Consumer {
  const connection: RedisClient = createRedisClient(target, "blocking", connectTimeoutMs);
  connection.on("error", () => undefined);
  const w = new Worker<QueueData>(queueName(workflow), (job, token) => handler(entryOf(job, token)), {
    connection,
    prefix,
    concurrency: opts.concurrency,
    lockDuration: opts.lockDurationMs ?? 30_000,
    stalledInterval: opts.stalledIntervalMs ?? 30_000,
    ...(opts.maxStalledCount !== undefined ? { maxStalledCount: opts.maxStalledCount } : {}),
    removeOnComplete: { count: 0 },
    removeOnFail: { count: 0 },
    drainDelay: opts.drainDelaySeconds ?? 1,
  });
  w.on("error", (err) => opts.onError?.(err));
  const givenUp = opts.onGivenUp;
  if (givenUp) w.on("failed", (job: BullJob<QueueData> | undefined, err: Error) => job && givenUpAsStalled(err) && givenUp(idsOf(job.data)));
  const onExtended = opts.onLocksExtended;
  if (onExtended) {
    // Wrapped rather than heard ("locksRenewed"): the fence needs the time the extension was *sent*, which its lock's new end follows.
    const extend = w.extendJobLocks.bind(w);
    w.extendJobLocks = async (ids: string[], tokens: string[], duration: number) => {
      const sentAt = performance.now();
      const failed = await extend(ids, tokens, duration);
      const ok = failed.length ? ids.filter((id) => !failed.includes(id)) : ids;
      if (ok.length) onExtended(ok, sentAt);
      return failed;
    };
  }
  let drained = false;
  w.on("drained", () => (drained = true));
  w.on("active", () => (drained = false));
  let held = 0;
  return {
    drained: () => drained,
    pause: () => w.pause(true),
    resume: () => w.resume(),
    hold: (n) => {
      const grows = n > held;
      held = n;
      // A smaller hold waits a turn of the event loop: the entry whose handler
      // just returned is completed first, with room for BullMQ's completion to
      // fetch the next entry in the same call (its fetchNext asks whether the
      // entries in hand are within the concurrency), not in a second one.
      // Below one when a chunk's jobs wait for slots (dispatch.ts): then nothing more is fetched until they start.
      if (grows) w.concurrency = Math.max(1, opts.concurrency + held);
      else setImmediate(() => (w.concurrency = Math.max(1, opts.concurrency + held)));
    },
    wake: () => {
      // BullMQ's own resume() wakes its loop so (a settled promise added to the queue the loop awaits); it offers no public call for it.
      const loop = (w as unknown as { mainLoopQueue?: { numTotal(): number; add(p: Promise<unknown>): void } | null }).mainLoopQueue;
      if (loop && typeof loop.add === "function" && loop.numTotal() < w.concurrency) loop.add(Promise.resolve());
    },
    async close() {
      const closing = w.close().catch(() => undefined);
      // BullMQ waits for its calls in flight; one stuck on a Redis node that
      // died (a cluster failover under load) would hold the launcher's exit
      // for ever. After a grace the connection is cut, which fails those calls.
      if (!(await bounded(closing, CLOSE_GRACE_MS).then(() => true, () => false))) {
        connection.disconnect();
        await bounded(closing, CLOSE_GRACE_MS).catch(() => undefined);
      }
      // BullMQ leaves a connection it was handed open on close(); this one is ours to end.
      connection.disconnect();
    },
  };
}

/** How long a consumer's close waits for BullMQ before cutting its connection. */
const CLOSE_GRACE_MS = 10_000;
