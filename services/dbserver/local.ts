import { rmSync, existsSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import {
  isLocal,
  readServerInfo,
  readSettings,
  writeServerInfo,
  type ServerInfo,
  newSecret,
  writeSettings,
  type RecordedProcess,
  type Settings,
} from "../../libs/config/index.js";
import { ConfigError, UnreachableError, UsageError } from "../../libs/errors/index.js";
import { isSameProcess, processIdentity } from "./identity.js";
import { pingMongo } from "../../libs/store/index.js";
import { pingRedis } from "../../libs/queue/index.js";
import { isAlive, portIsFree, startMongo, startRedis, stopPid, type ServerHandle, type StartOptions } from "./servers.js";

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
  /** Listen on all interfaces (both servers demand the passwords init wrote). */
  listenAll?: boolean;
  /** Called with one line per server started. */
  notify?: (line: string) => void;
}

/**
 * The local servers run on one machine, the one that started them. Another
 * machine (a compute node) never starts or stops them: two servers on one
 * SQLite directory would corrupt it. It says where they should be running.
 */
function refuseOtherMachine(dir: string, info: ServerInfo, what: string): void {
  const there = info.mongo?.machine ?? info.redis?.machine;
  if (there && there !== hostname()) {
    throw new UnreachableError(`the local servers of ${dir}`, `${there} (this is ${hostname()})`, {
      hint: `they run on ${there}: ${what} there with \`balsam server --connect\`; if ${there} is gone for good, delete ${join(dir, "server-info.json")} and start them here`,
    });
  }
}

/** The recorded server's process, if it is still the very process recorded. */
function liveRecorded(rec: RecordedProcess | undefined): number | undefined {
  return rec && isSameProcess(rec.pid, rec) ? rec.pid : undefined;
}

/** The port a server had, when it is free again: clients and running launchers keep their URLs. */
async function reusablePort(rec: RecordedProcess | undefined, host: string): Promise<number | undefined> {
  if (!rec?.port) return undefined;
  return (await portIsFree(rec.port, host)) ? rec.port : undefined;
}

function record(h: ServerHandle): RecordedProcess {
  return { url: h.url, pid: h.pid, port: h.port, host: h.host, ...(processIdentity(h.pid) ?? { machine: hostname() }) };
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
  const listenAll = opts.listenAll ?? false;
  const host = listenAll ? "0.0.0.0" : "127.0.0.1";
  // With --listen-all the URLs name this machine, so compute nodes can use them.
  const advertiseHost = listenAll ? hostname() : undefined;
  if (listenAll && !settings.redisPassword) {
    throw new ConfigError("--listen-all needs the Redis password that `balsam init` writes into settings.json");
  }
  const needRedis = status.local.redis && !status.redis.up;
  const needMongo = status.local.mongo && !status.mongo.up;
  if (needRedis || needMongo) refuseOtherMachine(dir, info, "start them");
  if (listenAll) {
    // Servers answering on loopback only cannot be reached from compute nodes:
    // saying "already running" would leave the cluster recipe broken.
    const loopbackOnly = [status.local.redis && status.redis.up && info.redis, status.local.mongo && status.mongo.up && info.mongo]
      .filter((r): r is RecordedProcess => Boolean(r))
      .filter((r) => r.host !== "0.0.0.0");
    if (loopbackOnly.length) {
      throw new UsageError("the local servers are running on 127.0.0.1 only, so other machines cannot reach them", {
        hint: "stop them (`balsam server --stop`), then `balsam server --connect --listen-all`",
      });
    }
  }
  // Running launchers keep the URLs they started with; if a server cannot
  // have its port back, say so rather than leave them waiting in silence.
  const moved = (now: number, was: number | undefined) =>
    was && was !== now ? ` — its recorded port ${was} was taken, so running launchers cannot find it: restart them` : "";
  const redisWas = info.redis?.port;
  const mongoWas = info.mongo?.port;
  // A recorded server still alive but not answering is stopped first; the new one gets the old port when it is free.
  const restart = async <H>(which: "redis" | "mongo", start: (o: StartOptions) => Promise<H>) => {
    const pid = liveRecorded(info[which]);
    if (pid) await stopPid(pid);
    const port = await reusablePort(info[which], host);
    return start({ dir: serverDir(dir, which), host, port, advertiseHost, detached: true, logFile: join(dir, "log", `${which}.log`) });
  };
  if (needRedis) {
    const h = await restart("redis", (o) => startRedis({ ...o, password: settings.redisPassword || undefined }));
    info.redis = record(h);
    writeServerInfo(dir, info);
    started.push(`redis-server on ${h.host}:${h.port} (pid ${h.pid})${moved(info.redis.port, redisWas)}`);
  }
  if (needMongo) {
    const h = await restart("mongo", (o) => startMongo({ ...o, auth: { username: LOCAL_MONGO_USER, password: settings.mongoPassword } }));
    info.mongo = { ...record(h), kind: h.kind };
    writeServerInfo(dir, info);
    started.push(`${h.kind} on ${h.host}:${h.port} (pid ${h.pid})${moved(info.mongo.port, mongoWas)}`);
  }
  for (const s of started) opts.notify?.(s);
  return started;
}

/**
 * Stops the recorded local servers that are still the processes recorded.
 * `notes` says which recorded pids were left alone and why.
 */
export async function stopLocalServers(dir: string, notes: string[] = []): Promise<string[]> {
  const info = readServerInfo(dir);
  refuseOtherMachine(dir, info, "stop them");
  const stopped: string[] = [];
  const redis = liveRecorded(info.redis);
  if (redis) {
    await stopPid(redis);
    stopped.push(`redis-server (pid ${redis})`);
  }
  const mongo = liveRecorded(info.mongo);
  if (mongo) {
    await stopPid(mongo);
    stopped.push(`${info.mongo?.kind} (pid ${mongo})`);
  }
  for (const [name, rec, pid] of [["redis", info.redis, redis], ["mongo", info.mongo, mongo]] as const) {
    if (rec?.pid && !pid && isAlive(rec.pid)) {
      notes.push(`pid ${rec.pid} recorded for ${name} is not the server that was started there (a reused pid, or a record of an older version): left alone`);
    }
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
