import {
  isLocal,
  readServerInfo,
  readSettings,
  resolveDbPath,
  type Settings,
} from "../config/index.js";
import { ConfigError } from "../errors/index.js";
import { Store } from "../store/index.js";
import type { JobQueues } from "../queue/index.js";

export interface ConnectOptions {
  /** Database directory; default `BALSAM_DB_PATH`. Ignored when both URLs are given. */
  dbPath?: string;
  /** MongoDB URL; overrides the settings file. */
  mongoUrl?: string;
  /** Redis URL; overrides the settings file. */
  redisUrl?: string;
  /** MongoDB database name. Default: the settings' `dbName`, else `balsam`. */
  dbName?: string;
  /** BullMQ key prefix. Default: the settings' `queuePrefix`, else `balsam`. */
  queuePrefix?: string;
  /** Per-server connect timeout. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** The settings of `dbPath` when the caller has read them already (the file is then not read again). */
  settings?: Settings;
  /** Check the MongoDB login on connecting (a round trip); see StoreOptions.checkAuth. Default true. */
  checkAuth?: boolean;
  /** Count the MongoDB commands sent (Store.commands); see StoreOptions.countCommands. Default true. */
  countCommands?: boolean;
  /** Create indexes on connect (idempotent, cheap). Default true. */
  ensureIndexes?: boolean;
  /**
   * Connect to Redis. Default true. `false` gives a client for reading jobs
   * and apps only (what `balsam ls` needs): BullMQ and ioredis are then not
   * even loaded, about a third of a command's start-up, and any use of
   * `queues` throws.
   */
  redis?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface ResolvedConnection {
  mongoUrl: string;
  redisUrl: string;
  dbName: string;
  queuePrefix: string;
  dbPath: string | undefined;
  settings: Settings | undefined;
}

/**
 * Where the servers are: explicit URLs win; else the database directory's
 * settings; a "local" server's URL comes from the directory's server-info.json.
 */
export function resolveConnection(opts: ConnectOptions = {}): ResolvedConnection {
  const env = opts.env ?? process.env;
  let settings: Settings | undefined;
  let dbPath: string | undefined;
  if (!(opts.mongoUrl && opts.redisUrl)) {
    dbPath = opts.dbPath ?? resolveDbPath(env);
    settings = opts.settings ?? readSettings(dbPath);
  }
  const info = dbPath ? readServerInfo(dbPath) : {};
  const pick = (explicit: string | undefined, configured: string | undefined, local: string | undefined, what: string): string => {
    if (explicit) return explicit;
    if (configured && !isLocal(configured)) return configured;
    if (local) return local;
    throw new ConfigError(`the local ${what} server of ${dbPath} is not running`, { hint: "start it with `balsam server --connect`" });
  };
  return {
    mongoUrl: pick(opts.mongoUrl, settings?.mongoUrl, info.mongo?.url, "MongoDB"),
    redisUrl: pick(opts.redisUrl, settings?.redisUrl, info.redis?.url, "Redis"),
    dbName: opts.dbName ?? settings?.dbName ?? "balsam",
    queuePrefix: opts.queuePrefix ?? settings?.queuePrefix ?? "balsam",
    dbPath,
    settings,
  };
}

export async function openBackends(conn: ResolvedConnection, opts: ConnectOptions): Promise<{ store: Store; queues: JobQueues }> {
  const store = await Store.connect({ url: conn.mongoUrl, dbName: conn.dbName, connectTimeoutMs: opts.connectTimeoutMs, checkAuth: opts.checkAuth, countCommands: opts.countCommands });
  try {
    if (opts.ensureIndexes !== false) await store.ensureIndexes();
    if (opts.redis === false) return { store, queues: noQueues() };
    const { JobQueues } = await import("../queue/index.js");
    const queues = await JobQueues.connect({ redisUrl: conn.redisUrl, prefix: conn.queuePrefix, connectTimeoutMs: opts.connectTimeoutMs });
    return { store, queues };
  } catch (err) {
    await store.close();
    throw err;
  }
}

/**
 * The queues of a client opened with `redis: false`: closing is a no-op,
 * anything else is a programming error said as such.
 */
function noQueues(): JobQueues {
  return new Proxy({} as JobQueues, {
    get(_t, prop) {
      if (prop === "close") return () => Promise.resolve();
      if (prop === "then") return undefined;
      throw new Error(`this client was opened without Redis (redis: false); queues.${String(prop)} needs it`);
    },
  });
}
