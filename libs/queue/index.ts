import { Queue } from "bullmq";
import { isValidWorkflow, queueName } from "./names.js";
import { checkQueuePrefix, parseRedisUrl, type RedisTarget } from "../config/index.js";
import { connectProducer, createRedisClient, pingTarget, type RedisClient } from "./connection.js";
import type { LaunchSnapshot } from "../models/index.js";
import { WORKFLOWS_CHANNEL } from "./channels.js";
import { bullJobId, startConsumer, type Consumer, type ConsumerOptions, type QueueData, type QueueEntry } from "./consumer.js";
export { bullJobId, chunkEntryId, type Consumer, type ConsumerOptions, type QueueData, type QueueEntry } from "./consumer.js";

/**
 * BullMQ side of Balsam: one queue per workflow whose entries are pointers
 * (the Balsam job id); MongoDB stays the source of truth. Only this folder
 * imports bullmq and ioredis.
 */

export { queueName, isValidWorkflow } from "./names.js";
export { masterNodes, type RedisClient } from "./connection.js";

export * from "./channels.js";

export interface QueueItem {
  id: string;
  workflow: string;
  /** The job's attempt counter; part of the BullMQ id. */
  attempts: number;
  /** MPI jobs: larger jobs first (BullMQ: lower number = sooner). Serial jobs leave it unset. */
  numNodes?: number;
  /** What a launcher needs to run the job without reading it (see libs/models/snapshot.ts). */
  spec?: LaunchSnapshot;
  /**
   * The entry id of the chunk the job was added in (Job.chunk). At attempt 0
   * the job is offered only through that entry, never one of its own: one
   * job under two entries could run twice at once.
   */
  chunk?: string;
}

/**
 * How long a chunk's snapshots are kept if its entry is never taken (removed
 * by `obliterate`, or waiting that long): then its launcher reads its jobs.
 */
const SNAPSHOTS_TTL_S = 7 * 24 * 3600;

/** Runs a pipeline; the first command that failed throws. */
async function execOrThrow(p: ReturnType<RedisClient["pipeline"]>): Promise<void> {
  for (const [err] of (await p.exec()) ?? []) if (err) throw err;
}

/** The entry that offers this item: its chunk's at attempt 0, else its own. */
function entryIdOf(it: Pick<QueueItem, "id" | "attempts" | "chunk">): string {
  return it.chunk && it.attempts === 0 ? it.chunk : bullJobId(it.id, it.attempts);
}

export interface JobQueuesOptions {
  /** redis://, redis-cluster:// or redis-sentinel:// (libs/config/redis-url.ts). */
  redisUrl: string;
  /**
   * Key prefix. Each workflow's queue name carries the workflow as a hash tag
   * (`{name}`), so on Redis Cluster every workflow's keys share a slot of their
   * own; a prefix with braces is refused there. Default `balsam`.
   */
  prefix?: string;
  /** How long to wait for Redis before reporting it unreachable. Default 5000. */
  connectTimeoutMs?: number;
}

/** A hash's fields and values, flat, and the hash deleted, in one step. */
const TAKE_HASH = "local v = redis.call('HGETALL', KEYS[1]); redis.call('DEL', KEYS[1]); return v";

export class JobQueues {
  readonly prefix: string;
  readonly redisUrl: string;
  /** What the URL names: one server, a cluster, a Sentinel group. */
  readonly target: RedisTarget;
  /** Producer connection: fails fast while Redis is down instead of queueing commands. */
  readonly connection: RedisClient;
  private readonly queues = new Map<string, Queue<QueueData>>();
  private readonly connectTimeoutMs: number;
  private subscriber: RedisClient | undefined;
  private readonly handlers = new Map<string, Set<(msg: string) => void>>();
  /** Told when the subscriber's connection comes back (subscribe's `resumed`). */
  private readonly resumedHandlers = new Set<() => void>();
  private closed = false;

  private constructor(opts: JobQueuesOptions, target: RedisTarget, connection: RedisClient) {
    this.prefix = opts.prefix ?? "balsam";
    this.redisUrl = opts.redisUrl;
    this.target = target;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    this.connection = connection;
  }

  static async connect(opts: JobQueuesOptions): Promise<JobQueues> {
    const target = parseRedisUrl(opts.redisUrl);
    checkQueuePrefix(target, opts.prefix ?? "balsam");
    const conn = await connectProducer(target, opts.connectTimeoutMs ?? 5000);
    conn.on("error", () => undefined);
    return new JobQueues(opts, target, conn);
  }

  private workflowsKey(): string {
    return `${this.prefix}:workflows`;
  }

  queue(workflow: string): Queue<QueueData> {
    const name = queueName(workflow);
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue<QueueData>(name, {
        connection: this.connection,
        prefix: this.prefix,
        // Completed/failed entries are dropped so Redis stays bounded: the job's
        // record is in MongoDB.
        defaultJobOptions: { removeOnComplete: true, removeOnFail: true, attempts: 1 },
      });
      q.on("error", () => undefined);
      this.queues.set(name, q);
    }
    return q;
  }

  /**
   * Adds runnable jobs to their workflows' queues with one `addBulk` per
   * workflow (chunked). Idempotent: ids derive from job id + attempt, or
   * the job's chunk; jobs of one chunk offered together make one entry
   * (one already there stands: it lists them all, and the launcher reads
   * which of them are still runnable). Returns how many jobs were offered.
   */
  async enqueue(items: readonly QueueItem[], opts: { newChunks?: boolean } = {}): Promise<number> {
    if (items.length === 0) return 0;
    const byWf = new Map<string, Map<string, { name: "run"; data: QueueData; opts: { jobId: string; priority?: number } }>>();
    // A chunk's snapshots (newChunks), or the chunked jobs whose snapshots no longer hold (any other offer).
    const snaps = new Map<string, Map<string, Map<string, string>>>();
    const chunked: QueueItem[] = [];
    for (const it of items) {
      queueName(it.workflow);
      let entries = byWf.get(it.workflow);
      if (!entries) byWf.set(it.workflow, (entries = new Map()));
      const jobId = entryIdOf(it);
      if (jobId === it.chunk) {
        if (!opts.newChunks) chunked.push(it);
        else if (it.spec) {
          const wfSnaps = snaps.get(it.workflow) ?? new Map<string, Map<string, string>>();
          snaps.set(it.workflow, wfSnaps.set(jobId, (wfSnaps.get(jobId) ?? new Map<string, string>()).set(it.id, JSON.stringify(it.spec))));
        }
      }
      const chunk = entries.get(jobId)?.data.c;
      if (chunk) chunk.push(it.id);
      else if (jobId === it.chunk) entries.set(jobId, { name: "run", data: { c: [it.id] }, opts: { jobId } });
      else {
        entries.set(jobId, {
          name: "run",
          data: it.spec ? { id: it.id, s: it.spec } : { id: it.id },
          opts: { jobId, ...(it.numNodes && it.numNodes > 1 ? { priority: Math.max(1, 10_000 - it.numNodes) } : {}) },
        });
      }
    }
    // Before the entries: a launcher may take one the moment it is added.
    for (const [wf, chunks] of snaps) {
      const p = this.connection.pipeline();
      for (const [chunk, byId] of chunks) p.hset(this.snapshotsKey(wf, chunk), byId).expire(this.snapshotsKey(wf, chunk), SNAPSHOTS_TTL_S);
      await execOrThrow(p);
    }
    await this.forgetSnapshots(chunked);
    // A new workflow is told at once, so launchers that match it by name start on it without waiting for their next look.
    if ((await this.connection.sadd(this.workflowsKey(), ...byWf.keys())) > 0) await this.publish(WORKFLOWS_CHANNEL, "new").catch(() => 0);
    for (const [wf, entries] of byWf) {
      const q = this.queue(wf);
      const list = [...entries.values()];
      for (let i = 0; i < list.length; i += 2000) await q.addBulk(list.slice(i, i + 2000));
    }
    return items.length;
  }

  /**
   * Removes queue entries of deleted or killed jobs; entries already taken
   * are left to the launcher's check. A chunk's entry offers other jobs too:
   * it stays (the launcher reads its jobs afresh and skips those no longer
   * runnable) unless `wholeChunks` says none of its jobs needs it any more
   * (libs/client/queue-item.ts, dropEntries).
   */
  async remove(items: ReadonlyArray<Pick<QueueItem, "id" | "workflow" | "attempts" | "chunk">>, opts: { wholeChunks?: boolean } = {}): Promise<number> {
    let n = 0;
    const byWf = new Map<string, Set<string>>();
    await this.forgetSnapshots(items, opts.wholeChunks);
    for (const it of items) {
      if (!isValidWorkflow(it.workflow)) continue;
      const id = entryIdOf(it);
      if (id === it.chunk && !opts.wholeChunks) continue;
      const list = byWf.get(it.workflow) ?? new Set();
      list.add(id);
      byWf.set(it.workflow, list);
    }
    for (const [wf, set] of byWf) {
      const q = this.queue(wf);
      const ids = [...set];
      for (let i = 0; i < ids.length; i += 500) {
        const res = await Promise.all(ids.slice(i, i + 500).map((id) => q.remove(id).catch(() => 0)));
        n += res.reduce<number>((a, b) => a + (b ? 1 : 0), 0);
      }
    }
    return n;
  }

  /**
   * A chunk's launch snapshots, written with its entry when its jobs were
   * added (enqueue's `newChunks`), so that the launcher that takes the
   * entry first reads none of them from the database. Each offer or removal
   * of a chunked job since (killed, modified, deleted, given parents,
   * restarted, re-offered) took its snapshot out. Taken once: they are
   * deleted here, and any later delivery of the entry (deferred, or its
   * launcher lost) reads its jobs afresh — some may have run meanwhile.
   */
  async takeSnapshots(workflow: string, chunk: string): Promise<Map<string, LaunchSnapshot>> {
    const key = this.snapshotsKey(workflow, chunk);
    // One script, not MULTI/HGETALL/DEL/EXEC: one command for Redis and one reply to parse here, as atomic.
    const flat = (await this.connection.eval(TAKE_HASH, 1, key)) as string[];
    const out = new Map<string, LaunchSnapshot>();
    for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i]!, JSON.parse(flat[i + 1]!) as LaunchSnapshot);
    return out;
  }

  /** Takes out the snapshots of these chunked jobs (all of their chunks' with `whole`); other items are passed over. */
  private async forgetSnapshots(items: ReadonlyArray<Pick<QueueItem, "id" | "workflow" | "attempts" | "chunk">>, whole = false): Promise<void> {
    const byWf = new Map<string, Map<string, string[]>>();
    for (const it of items) {
      if (!it.chunk || it.attempts !== 0 || !isValidWorkflow(it.workflow)) continue;
      const chunks = byWf.get(it.workflow) ?? new Map<string, string[]>();
      byWf.set(it.workflow, chunks.set(it.chunk, [...(chunks.get(it.chunk) ?? []), it.id]));
    }
    // One pipeline per workflow: its keys share the workflow's hash tag, so one slot of a cluster.
    for (const [wf, chunks] of byWf) {
      const p = this.connection.pipeline();
      for (const [chunk, ids] of chunks) {
        if (whole) p.del(this.snapshotsKey(wf, chunk));
        else p.hdel(this.snapshotsKey(wf, chunk), ...ids);
      }
      await execOrThrow(p);
    }
  }

  /** Where a chunk's launch snapshots are kept: beside its queue's keys, under the workflow's hash tag. */
  private snapshotsKey(workflow: string, chunk: string): string {
    return `${this.prefix}:${queueName(workflow)}:snap:${chunk}`;
  }

  /** The job ids each of these chunks' entries lists (an entry gone or taken meanwhile is left out). */
  async chunkJobs(items: ReadonlyArray<Pick<QueueItem, "workflow" | "chunk">>): Promise<Map<string, { workflow: string; ids: string[] }>> {
    const wanted = new Map<string, string>();
    for (const it of items) if (it.chunk && isValidWorkflow(it.workflow)) wanted.set(it.chunk, it.workflow);
    const out = new Map<string, { workflow: string; ids: string[] }>();
    const all = [...wanted];
    for (let i = 0; i < all.length; i += 500) {
      const got = await Promise.all(all.slice(i, i + 500).map(([chunk, wf]) => this.queue(wf).getJob(chunk).catch(() => undefined)));
      got.forEach((e, k) => {
        const [chunk, workflow] = all[i + k]!;
        if (e?.data?.c) out.set(chunk, { workflow, ids: e.data.c });
      });
    }
    return out;
  }

  /** Number of entries waiting (incl. delayed/prioritized) or being taken in a workflow's queue (a chunk is one). */
  async pending(workflow: string): Promise<number> {
    const c = await this.queue(workflow).getJobCounts("waiting", "active", "delayed", "prioritized");
    return Object.values(c).reduce((a, b) => a + b, 0);
  }

  /** Jobs the entries of a workflow's queue offer (waiting, delayed, prioritized or being taken): a chunk's entry offers each job it lists. */
  async offered(workflow: string): Promise<number> {
    const entries = await this.queue(workflow).getJobs(["waiting", "active", "delayed", "prioritized"], 0, -1);
    return entries.reduce((n, e) => n + (e?.data?.c?.length ?? 1), 0);
  }

  /** Entries ready to be taken now (not delayed, not being processed). */
  async waiting(workflow: string): Promise<number> {
    const c = await this.queue(workflow).getJobCounts("waiting", "prioritized");
    return Object.values(c).reduce((a, b) => a + b, 0);
  }

  /** Whether the entry for this job/attempt (or its chunk) is in its queue. */
  async has(item: Pick<QueueItem, "id" | "workflow" | "attempts" | "chunk">): Promise<boolean> {
    const j = await this.queue(item.workflow).getJob(entryIdOf(item));
    return j !== undefined && j !== null;
  }

  /** The workflows that have (or had) a queue, from the set every enqueue updates. */
  async workflows(): Promise<string[]> {
    const wfs = await this.connection.smembers(this.workflowsKey());
    return wfs.sort();
  }

  /** Drops a workflow's queue and its entry in the workflow set. */
  async obliterate(workflow: string): Promise<void> {
    await this.queue(workflow).obliterate({ force: true });
    await this.connection.srem(this.workflowsKey(), workflow);
  }

  channel(name: string): string {
    return `${this.prefix}:events:${name}`;
  }

  async publish(name: string, message: string): Promise<number> {
    return this.connection.publish(this.channel(name), message);
  }

  /**
   * Subscribes to a channel on a dedicated connection (Redis requires one for SUBSCRIBE). `resumed` is called each
   * time that connection comes back after a loss: messages published while it was down are gone.
   */
  async subscribe(name: string, handler: (msg: string) => void, opts: { resumed?: () => void } = {}): Promise<() => Promise<void>> {
    const channel = this.channel(name);
    if (!this.subscriber) {
      this.subscriber = createRedisClient(this.target, "blocking", this.connectTimeoutMs);
      this.subscriber.on("error", () => undefined);
      this.subscriber.on("message", (ch: string, msg: string) => {
        for (const h of this.handlers.get(ch) ?? []) h(msg);
      });
      await this.subscriber.connect();
      // Ready again after the first time: the connection was lost. What was published meanwhile never reaches us
      // (Redis keeps no pub/sub history): those told look for it elsewhere. ioredis emits "ready" before it sends the
      // SUBSCRIBEs anew, so they are told once a PING sent after those is answered: from then on nothing is missed.
      // (A cluster's subscription has a connection of its own, which this PING does not follow: there they are told at
      // once, and the periodic recheck covers the moment until it subscribes.)
      const sub = this.subscriber;
      sub.on("ready", () => {
        const tell = () => {
          for (const r of [...this.resumedHandlers]) r();
        };
        setImmediate(() => void sub.ping().then(tell, tell));
      });
    }
    let set = this.handlers.get(channel);
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
      await this.subscriber.subscribe(channel);
    }
    set.add(handler);
    const resumed = opts.resumed;
    if (resumed) this.resumedHandlers.add(resumed);
    return async () => {
      if (resumed) this.resumedHandlers.delete(resumed);
      const s = this.handlers.get(channel);
      s?.delete(handler);
      if (s && s.size === 0 && this.subscriber && !this.closed) {
        this.handlers.delete(channel);
        await this.subscriber.unsubscribe(channel).catch(() => undefined);
      }
    };
  }

  /** Consumes one workflow's queue (consumer.ts). */
  consume(workflow: string, handler: (entry: QueueEntry) => Promise<void>, opts: ConsumerOptions): Consumer {
    return startConsumer(this.target, this.prefix, this.connectTimeoutMs, workflow, handler, opts);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
    this.queues.clear();
    if (this.subscriber) {
      this.subscriber.disconnect();
      this.subscriber = undefined;
    }
    this.connection.disconnect();
  }
}

/** True when the Redis a URL names answers PING within `timeoutMs` (false for a URL of no known form). */
export async function pingRedis(url: string, timeoutMs = 1000): Promise<boolean> {
  let target: RedisTarget;
  try {
    target = parseRedisUrl(url);
  } catch {
    return false;
  }
  return pingTarget(target, timeoutMs);
}
