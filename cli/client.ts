import { connect, type Balsam } from "../libs/client/index.js";
import { isLocal, readServerInfo, readSettings, resolveDbPath, type RecordedProcess, type Settings } from "../libs/config/index.js";
import { isSameProcess } from "../services/dbserver/identity.js";

/**
 * The drivers' side of the CLI, loaded only by a command's action (never by
 * `--help` or a usage error): `cli/common.ts` imports this file dynamically.
 */

export interface OpenOptions {
  /** Start a local database's servers when they are down (default true). */
  autoStart?: boolean;
  /**
   * Only reads jobs and apps (`ls`, `which`, `cd`): no Redis connection (its
   * modules are not even loaded) and no index creation, the writers' business.
   */
  readOnly?: boolean;
}

function alive(rec: RecordedProcess | undefined): boolean {
  return rec !== undefined && isSameProcess(rec.pid, rec);
}

/**
 * Whether the local servers a command needs are the very processes recorded
 * as started (a /proc read, no connection). Pinging both first cost ~40 ms
 * of every command's ~0.5 s; a server that is alive but hung is reported by
 * the connection that follows instead.
 */
function localServersUp(dbPath: string, settings: Settings, redis: boolean): boolean {
  const info = readServerInfo(dbPath);
  if (isLocal(settings.mongoUrl) && (!settings.mongoPassword || !alive(info.mongo))) return false;
  if (redis && isLocal(settings.redisUrl) && !alive(info.redis)) return false;
  return true;
}

/**
 * Opens the database at BALSAM_DB_PATH. A local database whose servers are
 * down gets them started, said in one line on stderr.
 */
export async function openClient(opts: OpenOptions = {}): Promise<Balsam> {
  const dbPath = resolveDbPath();
  const settings = readSettings(dbPath);
  const redis = opts.readOnly !== true;
  const local = isLocal(settings.mongoUrl) || (redis && isLocal(settings.redisUrl));
  let known: Settings | undefined = settings;
  if (opts.autoStart !== false && local && !localServersUp(dbPath, settings, redis)) {
    // Starting them can write settings.json (a first MongoDB password): connect reads it again.
    known = undefined;
    // Loaded only here: it brings ioredis and bullmq, which a read-only command never needs.
    const { ensureLocalServers } = await import("../services/dbserver/local.js");
    const started = await ensureLocalServers(dbPath);
    if (started.length) process.stderr.write(`balsam: started the local servers of ${dbPath}: ${started.join(", ")}\n`);
  }
  // A read-only command's first query tells a missing password as well as a
  // probe would (withClient says it alike), a round trip sooner.
  return connect({ dbPath, settings: known, redis, ensureIndexes: redis, checkAuth: redis, countCommands: redis });
}

/** Runs `fn` with a client, closing it afterwards whatever happens. */
export async function withClient<T>(fn: (b: Balsam) => Promise<T>, opts: OpenOptions = {}): Promise<T> {
  const b = await openClient(opts);
  try {
    return await fn(b);
  } catch (err) {
    throw b.store.explainError(err);
  } finally {
    await b.close();
  }
}
