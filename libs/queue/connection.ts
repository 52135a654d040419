import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";
import { ConfigError, UnreachableError, type BalsamError } from "../errors/index.js";
import { describeRedisKind, redactUrl, type HostPort, type RedisTarget } from "../config/index.js";

/**
 * The one place that makes Redis connections, for the three kinds of
 * deployment a Redis URL names (libs/config/redis-url.ts): one server, a
 * Redis Cluster, or a primary watched by Sentinels. Everything above it
 * (BullMQ queues and workers, pub/sub) takes what this returns.
 */

export type RedisClient = Redis | Cluster;

/**
 * What a connection is for:
 * - `producer`: commands of a client or the CLI; they fail fast while the
 *   server is away (no offline queue) instead of waiting in memory;
 * - `blocking`: BullMQ workers and subscribers, which wait for ever
 *   (`maxRetriesPerRequest: null`, as BullMQ requires for workers);
 * - `probe`: one look, no reconnecting.
 */
export type ConnectionRole = "producer" | "blocking" | "probe";

/** Slots a Redis Cluster has; all must be served for every workflow's queue to work. */
export const CLUSTER_SLOTS = 16384;

/** Jittered, capped backoff for reconnects (BullMQ's production guidance). */
function backoffMs(times: number): number {
  return Math.min(2000, 100 * 2 ** Math.min(times, 5)) + Math.floor(Math.random() * 100);
}

/**
 * A primary demoted by a failover answers writes with READONLY until its
 * clients leave: reconnect (Sentinel then names the new primary) and resend.
 */
function reconnectOnReadOnly(err: Error): 2 | false {
  return err.message.startsWith("READONLY") ? 2 : false;
}

function retriesPerRequest(role: ConnectionRole): number | null {
  return role === "blocking" ? null : role === "producer" ? 1 : 0;
}

/** Rounds of the Sentinels asked again, 100 ms more apart each time, at most 1 s. */
function sentinelRetry(times: number): number {
  return Math.min(1000, times * 100);
}

function serverOptions(target: RedisTarget, role: ConnectionRole, timeoutMs: number): RedisOptions {
  const o: RedisOptions = {
    connectTimeout: timeoutMs,
    lazyConnect: true,
    maxRetriesPerRequest: retriesPerRequest(role),
    retryStrategy: role === "probe" ? () => null : backoffMs,
    reconnectOnError: reconnectOnReadOnly,
    ...(role === "blocking" ? {} : { enableOfflineQueue: false }),
  };
  if (target.kind !== "sentinel") return o;
  return {
    ...o,
    sentinels: target.sentinels,
    name: target.masterName,
    username: target.username,
    password: target.password,
    // One secret per deployment: the Sentinels' own password is the data nodes'.
    sentinelPassword: target.password,
    sentinelRetryStrategy: role === "probe" ? () => null : sentinelRetry,
    // A Sentinel that accepts and never answers (stopped, overloaded) would
    // hold a reconnect for ever: ask the next one instead.
    sentinelCommandTimeout: timeoutMs,
    // No +switch-master listener: ioredis's failover detector survives a
    // connection the server dropped, and when its message lands while the
    // reconnect is asking a Sentinel where the primary is, the reconnect is
    // abandoned and the client ends for good ("Connection is closed." on
    // every command after; seen once after a kill -9 of the primary). A
    // failover is seen without it: a dead primary drops its connections, a
    // demoted one has them killed by the Sentinels (CLIENT KILL) and answers
    // writes with READONLY (reconnectOnReadOnly).
    failoverDetector: false,
  };
}

function clusterOptions(target: Extract<RedisTarget, { kind: "cluster" }>, role: ConnectionRole, timeoutMs: number): ClusterOptions {
  return {
    lazyConnect: true,
    enableOfflineQueue: role === "blocking",
    clusterRetryStrategy: role === "probe" ? () => null : backoffMs,
    // A killed master is replaced in about node-timeout + 1 s (3 s with the tests' 2 s): commands
    // to its slots are retried meanwhile, 16 times (maxRedirections) 300 ms apart.
    retryDelayOnFailover: 300,
    retryDelayOnClusterDown: 300,
    retryDelayOnTryAgain: 300,
    slotsRefreshTimeout: Math.min(timeoutMs, 2000),
    redisOptions: {
      connectTimeout: timeoutMs,
      username: target.username,
      password: target.password,
      maxRetriesPerRequest: retriesPerRequest(role),
      reconnectOnError: reconnectOnReadOnly,
    },
  };
}

/** A client for `target`, not yet connected (`connect()` it, or let BullMQ). */
export function createRedisClient(target: RedisTarget, role: ConnectionRole, timeoutMs: number): RedisClient {
  if (target.kind === "cluster") return new Cluster(target.nodes, clusterOptions(target, role, timeoutMs));
  if (target.kind === "single") return new Redis(target.url, serverOptions(target, role, timeoutMs));
  if (role !== "producer") return new Redis(serverOptions(target, role, timeoutMs));
  // A producer's first connect fails at once when no Sentinel answers (the
  // caller says why); once connected, it asks them again and again: ioredis
  // ends a connection for good when a round of the Sentinels gives up
  // (measured: kill -9 of the primary left a producer "end"ed for ever).
  let connected = false;
  const c = new Redis({ ...serverOptions(target, role, timeoutMs), sentinelRetryStrategy: (times: number) => (connected ? sentinelRetry(times) : null) });
  c.once("ready", () => (connected = true));
  return c;
}

/** The master nodes' own connections: the cluster's masters, or the one server. */
export function masterNodes(c: RedisClient): Redis[] {
  return c instanceof Cluster ? c.nodes("master") : [c];
}

/** `p`, or a rejection after `ms`. */
export async function bounded<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`no answer within ${ms} ms`)), Math.max(1, ms))));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Connects `c`, then runs `fn`, all within `ms`. */
async function connectThen<T>(c: RedisClient, fn: () => Promise<T>, ms: number): Promise<T> {
  return bounded(
    (async () => {
      await c.connect();
      return fn();
    })(),
    ms,
  );
}

/** True when the deployment at `target` answers PING within `timeoutMs` (a cluster: once it serves every slot). */
export async function pingTarget(target: RedisTarget, timeoutMs: number): Promise<boolean> {
  const c = createRedisClient(target, "probe", timeoutMs);
  c.on("error", () => undefined);
  // Bounded as a whole: a port held by something that accepts and never
  // answers (not Redis) would otherwise keep a command waiting for ever.
  try {
    return (await connectThen(c, () => c.ping(), timeoutMs)) === "PONG";
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}

/**
 * The producer connection of a client, connected and answering; else the
 * reason in one line: unreachable, a refused password, not a cluster, a
 * cluster that does not serve every slot (waited for until `timeoutMs`, as
 * a failover in progress ends), a Sentinel that knows no such master.
 */
export async function connectProducer(target: RedisTarget, timeoutMs: number): Promise<RedisClient> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = createRedisClient(target, "producer", timeoutMs);
    // A refused AUTH shows only here (the command then fails with "Connection is closed").
    let lastError: Error | undefined;
    c.on("error", (err: Error) => (lastError = err));
    try {
      await connectThen(c, () => c.ping(), deadline - Date.now());
      return c;
    } catch (err) {
      c.disconnect();
      const { error, transient } = await explainFailure(target, [lastError, err as Error], Math.min(1000, timeoutMs));
      if (!transient || Date.now() + 300 > deadline) throw error;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}

/** Redis's answers to a wrong or missing password (6.x/7.x: WRONGPASS, NOAUTH; older: "invalid password"). */
const AUTH_REFUSED = /^(WRONGPASS|NOAUTH)|invalid password/;

function authError(what: string, url: string, messages: ReadonlyArray<string | undefined>): ConfigError | undefined {
  const said = messages.find((m) => m !== undefined && AUTH_REFUSED.test(m));
  if (!said) return undefined;
  return new ConfigError(said.startsWith("NOAUTH") ? `${what} at ${url} requires a password and none was given` : `${what} at ${url} refused the password`, {
    hint: "put the right one in the Redis URL in settings.json, or in redisPassword for a local database",
  });
}

const UNREACHABLE_HINT = "start it (`balsam server --connect` for a local database) or fix the URL in settings.json";

/** One command to one node, on a connection of its own; the reply or the error's message. */
async function askNode(at: HostPort, creds: { username?: string; password?: string }, args: [string, ...string[]], timeoutMs: number): Promise<{ reply?: unknown; error?: string }> {
  const c = new Redis({ ...at, ...creds, connectTimeout: timeoutMs, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
  let lastError: string | undefined;
  c.on("error", (e: Error) => (lastError = e.message));
  try {
    return {
      reply: await connectThen(c, () => c.call(...args), timeoutMs),
    };
  } catch (err) {
    const m = (err as Error).message;
    return { error: lastError && AUTH_REFUSED.test(lastError) ? lastError : m };
  } finally {
    c.disconnect();
  }
}

interface Failure {
  error: BalsamError;
  /** Worth waiting out (a cluster failing over). */
  transient: boolean;
}

/** Why connecting failed, asked of the nodes the URL names. */
async function explainFailure(target: RedisTarget, errors: ReadonlyArray<Error | undefined>, probeMs: number): Promise<Failure> {
  const url = redactUrl(target.url);
  const kind = describeRedisKind(target);
  const messages = errors.map((e) => e?.message);
  const cause = errors.find((e) => e !== undefined);
  const unreachable = (what = kind): Failure => ({ error: new UnreachableError(what, url, { cause, hint: UNREACHABLE_HINT }), transient: false });
  if (target.kind === "single") return { error: authError(kind, url, messages) ?? unreachable().error, transient: false };
  const creds = { username: target.username, password: target.password };
  if (target.kind === "cluster") {
    const answers = await Promise.all(target.nodes.map((n) => askNode(n, creds, ["CLUSTER", "INFO"], probeMs)));
    const auth = authError(kind, url, answers.map((a) => a.error));
    if (auth) return { error: auth, transient: false };
    if (answers.some((a) => a.error?.includes("cluster support disabled"))) {
      return { error: new ConfigError(`the Redis at ${url} is not a cluster node (cluster support disabled)`, { hint: "use redis://host:port for one server, or redis-sentinel://…/master-name for a Sentinel group" }), transient: false };
    }
    const info = answers.map((a) => (typeof a.reply === "string" ? a.reply : undefined)).find((r) => r !== undefined);
    if (info === undefined) return unreachable();
    const field = (name: string) => new RegExp(`^${name}:(\\S+)`, "m").exec(info)?.[1];
    if (field("cluster_state") !== "ok" || Number(field("cluster_slots_ok")) < CLUSTER_SLOTS) {
      const error = new ConfigError(`${kind} at ${url} does not serve every slot (cluster_state:${field("cluster_state") ?? "?"}, ${field("cluster_slots_ok") ?? "?"} of ${CLUSTER_SLOTS} slots served)`, {
        hint: "a master and its replicas are down, or slots are unassigned: see `redis-cli --cluster check HOST:PORT`",
      });
      return { error, transient: true };
    }
    return unreachable();
  }
  const answers = await Promise.all(target.sentinels.map((s) => askNode(s, creds, ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", target.masterName], probeMs)));
  const auth = authError("Redis Sentinel", url, answers.map((a) => a.error));
  if (auth) return { error: auth, transient: false };
  const answered = answers.filter((a) => a.error === undefined);
  if (answered.length === 0) return unreachable("Redis Sentinel");
  const primary = answered.map((a) => a.reply).find((r): r is [string, string] => Array.isArray(r) && r.length === 2);
  if (!primary) {
    return { error: new ConfigError(`no Sentinel at ${url} watches a master named '${target.masterName}'`, { hint: "the name after the last '/' must be the one in the Sentinels' `sentinel monitor NAME …`" }), transient: false };
  }
  return { error: authError("Redis", url, messages) ?? unreachable(`the Redis primary ${primary[0]}:${primary[1]} that Sentinel names`).error, transient: false };
}
