import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createFirstUser, pingMongo } from "../../libs/store/index.js";
import { pingRedis } from "../../libs/queue/index.js";
import { ConfigError } from "../../libs/errors/index.js";

/**
 * Starts and stops the servers a local database (or a test run) needs:
 * `redis-server` and a MongoDB-wire server — `mongod` when it is on PATH,
 * else the FerretDB that scripts/provision.sh builds.
 */

export const FERRETDB_VERSION = "v1.24.2";
/**
 * The provisioned build's tag: the version and a hash of our patch series,
 * computed as scripts/provision.sh does, so a changed patch is never tested
 * with a stale cached binary.
 */
export function ferretdbBuild(): string {
  const dir = join(projectRoot(), "scripts", "ferretdb");
  const h = createHash("sha256");
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => /^0.*\.patch$/.test(f)).sort();
  } catch {
    // An installed package without scripts/: only BALSAM_FERRETDB or PATH can name a binary.
  }
  for (const f of files) h.update(readFileSync(join(dir, f)));
  return `${FERRETDB_VERSION}-${h.digest("hex").slice(0, 12)}`;
}

export function projectRoot(): string {
  // dist/services/dbserver/servers.js → the package root three levels up.
  const here = dirname(fileURLToPath(import.meta.url));
  return resolve(here, "..", "..", "..");
}

function onPath(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? "").split(":")) {
    if (d && existsSync(join(d, cmd))) return join(d, cmd);
  }
  return undefined;
}

export interface MongoBinary {
  kind: "mongod" | "ferretdb";
  path: string;
}

export function findMongoBinary(): MongoBinary | undefined {
  const mongod = onPath("mongod");
  if (mongod) return { kind: "mongod", path: mongod };
  const candidates = [
    process.env.BALSAM_FERRETDB,
    join(process.env.BALSAM_CACHE_DIR ?? join(projectRoot(), ".cache"), `ferretdb-${ferretdbBuild()}`, "ferretdb"),
    onPath("ferretdb"),
  ];
  for (const c of candidates) if (c && existsSync(c)) return { kind: "ferretdb", path: c };
  return undefined;
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/** True when nothing listens on `port` at `host` (so a server can take it again). */
export async function portIsFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolveFree) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolveFree(false));
    srv.listen(port, host, () => srv.close(() => resolveFree(true)));
  });
}

/** Polls `cond` until it is true; the way tests and startup wait, never a fixed sleep. */
export async function waitFor(cond: () => Promise<boolean> | boolean, timeoutMs: number, what: string, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface StartOptions {
  /** Data directory; created if missing. */
  dir: string;
  host?: string;
  port?: number;
  /** Keep running after this process exits (local databases); tests use attached servers. */
  detached?: boolean;
  logFile?: string;
  startTimeoutMs?: number;
  /**
   * The host put in the returned URL, for clients on other machines (with
   * host 0.0.0.0). The server is still checked through loopback here.
   */
  advertiseHost?: string;
}

export interface ServerHandle {
  url: string;
  pid: number;
  host: string;
  port: number;
  stop(): Promise<void>;
}

function openLog(file: string | undefined): number | "ignore" {
  if (!file) return "ignore";
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  return openSync(file, "a", 0o600);
}

async function launch(
  cmd: string,
  args: string[],
  opts: StartOptions,
  env: NodeJS.ProcessEnv = {},
): Promise<{ pid: number; stop: () => Promise<void>; exited: () => boolean }> {
  const fd = openLog(opts.logFile);
  const child = spawn(cmd, args, { detached: opts.detached ?? false, stdio: ["ignore", fd, fd], env: { ...process.env, ...env } });
  if (typeof fd === "number") closeSync(fd);
  let exited = false;
  child.on("exit", () => {
    exited = true;
  });
  await new Promise<void>((res, rej) => {
    child.once("spawn", () => res());
    child.once("error", rej);
  });
  if (opts.detached) child.unref();
  const pid = child.pid ?? 0;
  return {
    pid,
    exited: () => exited,
    stop: async () => {
      if (exited) return;
      child.kill("SIGTERM");
      await waitFor(() => exited, 10_000, `${cmd} to stop`).catch(() => child.kill("SIGKILL"));
    },
  };
}

export interface RedisStartOptions extends StartOptions {
  password?: string;
  /** AOF persistence; on for local databases (BullMQ's guidance), optional for throwaway test servers. */
  appendOnly?: boolean;
  /** A configuration file read first (a Sentinel's, which it rewrites as it learns). */
  configFile?: string;
  /** More arguments after ours (cluster mode, replication, `--sentinel`). */
  extraArgs?: string[];
}

export async function startRedis(opts: RedisStartOptions): Promise<ServerHandle> {
  const bin = onPath("redis-server");
  if (!bin) throw new ConfigError("redis-server is not installed", { hint: "run scripts/provision.sh, or set REDIS_URL to a running server" });
  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  chmodSync(opts.dir, 0o700);
  const host = opts.host ?? "127.0.0.1";
  const extra = opts.extraArgs ?? [];
  const cluster = extra.some((a, i) => a === "--cluster-enabled" && extra[i + 1] === "yes");
  const auth = opts.password ? `:${encodeURIComponent(opts.password)}@` : "";
  const connectHost = host === "0.0.0.0" ? "127.0.0.1" : host;
  // A cluster node binds its bus port too (port + 10000): one is chosen free as well.
  return startOnPort(opts, "redis-server", () => freeRedisPort(host, cluster), async (port) => {
    const args = [
      ...(opts.configFile ? [resolve(opts.configFile)] : []),
      "--port", String(port),
      "--bind", host,
      "--dir", resolve(opts.dir),
      "--appendonly", opts.appendOnly === false ? "no" : "yes",
      "--save", "",
      "--maxmemory-policy", "noeviction",
      "--daemonize", "no",
      "--protected-mode", opts.password ? "yes" : "no",
    ];
    if (opts.password) args.push("--requirepass", opts.password);
    args.push(...extra);
    const p = await launch(bin, args, opts);
    const at = (h: string) => `redis://${auth}${h}:${port}`;
    await waitFor(async () => p.exited() || (await pingRedis(at(connectHost), 500)), opts.startTimeoutMs ?? 15_000, `redis-server on port ${port}`);
    return p.exited() ? undefined : { url: at(opts.advertiseHost ?? connectHost), pid: p.pid, host, port, stop: p.stop };
  });
}

/**
 * Starts a server on `opts.port`, once, or on a port chosen here: a chosen
 * port can be taken before the server binds it (servers started side by
 * side), so a server that exits at start on one gets another, up to 3 tries.
 * `startOn` answers undefined when the server exited before it answered.
 */
async function startOnPort<T>(opts: StartOptions, name: string, choose: () => Promise<number>, startOn: (port: number) => Promise<T | undefined>): Promise<T> {
  const attempts = opts.port === undefined ? 3 : 1;
  for (let attempt = 1; ; attempt++) {
    const started = await startOn(opts.port ?? (await choose()));
    if (started) return started;
    if (attempt >= attempts) throw new Error(`${name} exited at start${opts.logFile ? ` (see ${opts.logFile})` : ""}`);
  }
}

/** A free port for a Redis server; for a cluster node, one whose bus port (port + 10000) is free and valid too. */
async function freeRedisPort(host: string, cluster: boolean): Promise<number> {
  for (let i = 0; ; i++) {
    const port = await freePort(host);
    if (!cluster || (port + 10_000 <= 65_535 && (await portIsFree(port + 10_000, host)))) return port;
    if (i >= 50) throw new Error(`no free port with a free cluster bus port (port + 10000) found on ${host}`);
  }
}

export interface MongoHandle extends ServerHandle {
  kind: "mongod" | "ferretdb";
}

export interface MongoStartOptions extends StartOptions {
  /**
   * Require SCRAM authentication as this user of `admin` (created at the
   * first start). The password reaches FerretDB through its environment,
   * never its command line, which other users can read in `ps`.
   */
  auth?: { username: string; password: string };
}

export async function startMongo(opts: MongoStartOptions): Promise<MongoHandle> {
  const bin = findMongoBinary();
  if (!bin) {
    throw new ConfigError("no MongoDB-wire server: neither mongod nor the provisioned FerretDB was found", {
      hint: "run scripts/provision.sh (builds FerretDB), or set MONGODB_URL to a running server",
    });
  }
  const dir = resolve(opts.dir);
  // The data are nobody else's business: the directory is the owner's alone.
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const host = opts.host ?? "127.0.0.1";
  return startOnPort(opts, bin.kind, () => freePort(), (port) => startMongoOn(bin, dir, host, port, opts));
}

/** One start of the server on `port`; undefined when it exited before it answered. */
async function startMongoOn(bin: MongoBinary, dir: string, host: string, port: number, opts: MongoStartOptions): Promise<MongoHandle | undefined> {
  const auth = opts.auth;
  const env: NodeJS.ProcessEnv = {};
  const args =
    bin.kind === "mongod"
      ? ["--dbpath", dir, "--port", String(port), "--bind_ip", host, "--quiet", ...(auth ? ["--auth"] : [])]
      : [
          "--handler=sqlite",
          // WAL with synchronous=NORMAL: no fsync per commit (4 ms → 2.6 ms per update measured here);
          // a crash of the machine can lose the last commits, never corrupt the file.
          // A 32 MB page cache per connection (SQLite's default, 2 MB, is less than one
          // `ls` page of a large database touches). 1,001 of 100,000 jobs with the `ls`
          // projection, 200 finds, median of 6 alternating rounds per returned document:
          // 27 → 24 µs (server CPU 24 → 20 µs); `{workflow: X}` 31 → 24 µs (CPU 26 → 20 µs).
          // No change on 1,000 jobs. Pages are only cached as they are read.
          `--sqlite-url=file:${encodeUrlPath(dir)}/?_pragma=synchronous(NORMAL)&_pragma=cache_size(-32000)`,
          `--listen-addr=${host}:${port}`,
          "--telemetry=disable",
          "--debug-addr=-",
          "--state-dir=-",
          "--log-level=error",
          // Filters on a sub-document's field (`tags.k`, a tag query) reach the
          // SQLite backend, whose patch 0016 answers them through their index;
          // without it the handler drops them before the backend sees them.
          "--test-enable-nested-pushdown",
          ...(auth ? ["--test-enable-new-auth", "--setup-database=admin", `--setup-username=${auth.username}`] : []),
        ];
  if (bin.kind === "ferretdb") {
    // FerretDB decodes and re-encodes each document it touches; a less eager
    // collector cut its CPU per job by ~25% here (GOGC=400, a few MB more heap).
    env.GOGC = process.env.GOGC ?? "400";
    // One Go processor: its writes serialize on the collection's lock (0005)
    // and SQLite's one writer anyway, and a second processor mostly spun
    // looking for work on the core the launcher and its jobs need (the
    // scheduler and sysmon were a fifth of its CPU). A launcher's 3,000
    // no-op jobs, 4 alternating pairs: server CPU 0.98–1.29 → 0.88–0.93 ms
    // per job. GOMAXPROCS set by the user (reads in parallel on a big login
    // node: many `ls` or dashboards) is kept.
    env.GOMAXPROCS = process.env.GOMAXPROCS || "1";
    if (auth) env.FERRETDB_SETUP_PASSWORD = auth.password;
  }
  const p = await launch(bin.path, args, opts, env);
  const connectHost = host === "0.0.0.0" ? "127.0.0.1" : host;
  const bare = `mongodb://${connectHost}:${port}`;
  const at = (h: string) =>
    auth ? `mongodb://${encodeURIComponent(auth.username)}:${encodeURIComponent(auth.password)}@${h}:${port}/?authSource=admin` : `mongodb://${h}:${port}`;
  const timeoutMs = opts.startTimeoutMs ?? 30_000;
  if (auth && bin.kind === "mongod") {
    // mongod lets a localhost client create the first user; after that, its
    // localhost exception is closed and this fails harmlessly on a restart.
    await waitFor(async () => p.exited() || (await pingMongo(bare, 500)), timeoutMs, `mongod on port ${port}`);
    if (p.exited()) return undefined;
    await createFirstUser(bare, auth.username, auth.password);
  }
  await waitFor(async () => p.exited() || (await pingMongo(at(connectHost), 500)), timeoutMs, `${bin.kind} on port ${port}`);
  if (p.exited()) return undefined;
  return { url: at(opts.advertiseHost ?? connectHost), pid: p.pid, host, port, kind: bin.kind, stop: p.stop };
}

/**
 * A filesystem path as the path part of a URL: each segment percent-encoded,
 * so `%41`, `?` and `#` in a directory name stay part of the path (unencoded,
 * `/x/p%41` stored its data in `/x/pA`, and `?` ended the path).
 */
export function encodeUrlPath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

export function isAlive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops a detached server by pid: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopPid(pid: number, graceMs = 10_000): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, "SIGTERM");
  try {
    await waitFor(() => !isAlive(pid), graceMs, `process ${pid} to stop`);
  } catch {
    process.kill(pid, "SIGKILL");
  }
}

