import { rmSync, existsSync } from "node:fs";
import { join } from "node:path";
import {
  isLocal,
  readServerInfo,
  readSettings,
  writeServerInfo,
  type ServerInfo,
  newSecret,
  writeSettings,
  type Settings,
} from "../../libs/config/index.js";
import { pingMongo } from "../../libs/store/index.js";
import { pingRedis } from "../../libs/queue/index.js";
import { isAlive, startMongo, startRedis, stopPid } from "./servers.js";

/**
 * The servers of a *local* database: started from its directory (data under
 * `data/servers/`, logs under `log/`), detached so they outlive the command,
 * with their pids and addresses in `server-info.json`.
 */
export interface LocalStatus {
  local: { mongo: boolean; redis: boolean };
  mongo: { url: string; up: boolean; pid?: number; kind?: string };
  redis: { url: string; up: boolean; pid?: number };
}

/** The user every connection to a local MongoDB-wire server authenticates as. */
export const LOCAL_MONGO_USER = "balsam";

function serverDir(dir: string, which: string): string {
  return join(dir, "data", "servers", which);
}

export async function localStatus(dir: string, settings = readSettings(dir)): Promise<LocalStatus> {
  const info = readServerInfo(dir);
  const mongoUrl = isLocal(settings.mongoUrl) ? (info.mongo?.url ?? "") : settings.mongoUrl;
  const redisUrl = isLocal(settings.redisUrl) ? (info.redis?.url ?? "") : settings.redisUrl;
  const [mUp, rUp] = await Promise.all([
    mongoUrl ? pingMongo(mongoUrl, 1000) : Promise.resolve(false),
    redisUrl ? pingRedis(redisUrl, 1000) : Promise.resolve(false),
  ]);
  return {
    local: { mongo: isLocal(settings.mongoUrl), redis: isLocal(settings.redisUrl) },
    mongo: { url: mongoUrl, up: mUp, pid: info.mongo?.pid, kind: info.mongo?.kind },
    redis: { url: redisUrl, up: rUp, pid: info.redis?.pid },
  };
}

export interface EnsureOptions {
  /** Listen on all interfaces (requires the Redis password, which init always sets). */
  listenAll?: boolean;
  /** Called with one line per server started. */
  notify?: (line: string) => void;
}

/** Starts whichever local server is not answering; returns what it started. */
export async function ensureLocalServers(dir: string, opts: EnsureOptions = {}): Promise<string[]> {
  let settings: Settings = readSettings(dir);
  if (isLocal(settings.mongoUrl) && !settings.mongoPassword) {
    // A database made before local MongoDB servers had a password: give it
    // one now (FerretDB creates the user on its first start with auth).
    settings = { ...settings, mongoPassword: newSecret() };
    writeSettings(dir, settings);
  }
  const status = await localStatus(dir, settings);
  const info: ServerInfo = readServerInfo(dir);
  const started: string[] = [];
  const host = opts.listenAll ? "0.0.0.0" : "127.0.0.1";
  if (opts.listenAll && !settings.redisPassword) {
    throw new Error("--listen-all needs the Redis password that `balsam init` writes into settings.json");
  }
  if (status.local.redis && !status.redis.up) {
    if (info.redis?.pid && isAlive(info.redis.pid)) await stopPid(info.redis.pid);
    const h = await startRedis({
      dir: serverDir(dir, "redis"),
      host,
      password: settings.redisPassword || undefined,
      detached: true,
      logFile: join(dir, "log", "redis.log"),
    });
    info.redis = { url: h.url, pid: h.pid, port: h.port, host: h.host };
    writeServerInfo(dir, info);
    started.push(`redis-server on ${h.host}:${h.port} (pid ${h.pid})`);
  }
  if (status.local.mongo && !status.mongo.up) {
    if (info.mongo?.pid && isAlive(info.mongo.pid)) await stopPid(info.mongo.pid);
    const h = await startMongo({
      dir: serverDir(dir, "mongo"),
      host,
      detached: true,
      logFile: join(dir, "log", "mongo.log"),
      auth: { username: LOCAL_MONGO_USER, password: settings.mongoPassword },
    });
    info.mongo = { url: h.url, pid: h.pid, port: h.port, host: h.host, kind: h.kind };
    writeServerInfo(dir, info);
    started.push(`${h.kind} on ${h.host}:${h.port} (pid ${h.pid})`);
  }
  for (const s of started) opts.notify?.(s);
  return started;
}

export async function stopLocalServers(dir: string): Promise<string[]> {
  const info = readServerInfo(dir);
  const stopped: string[] = [];
  if (info.redis?.pid && isAlive(info.redis.pid)) {
    await stopPid(info.redis.pid);
    stopped.push(`redis-server (pid ${info.redis.pid})`);
  }
  if (info.mongo?.pid && isAlive(info.mongo.pid)) {
    await stopPid(info.mongo.pid);
    stopped.push(`${info.mongo.kind} (pid ${info.mongo.pid})`);
  }
  writeServerInfo(dir, {});
  return stopped;
}

/** Stops the local servers and deletes their data. */
export async function resetLocalServers(dir: string): Promise<void> {
  await stopLocalServers(dir);
  const d = join(dir, "data", "servers");
  if (existsSync(d)) rmSync(d, { recursive: true, force: true });
}
