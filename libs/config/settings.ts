import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync, rmSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import * as z from "zod/mini";
import en from "zod/v4/locales/en.js";
import { ConfigError, UsageError } from "../errors/index.js";
import { checkQueuePrefix, parseRedisUrl } from "./redis-url.js";

export const SETTINGS_FILE = "settings.json";
/**
 * Lease lapses a job gets by default: it survives a few lost nodes, and one
 * that takes its launcher down costs at most 5 lease periods (15 min at the
 * default 180 s lease).
 */
export const DEFAULT_MAX_LEASE_LAPSES = 5;
export const SERVER_INFO_FILE = "server-info.json";

/**
 * The database directory's settings file. `mongoUrl`/`redisUrl` are either a
 * URL of a server the user runs, or "local": `balsam server` runs one from
 * this directory. Validated with zod because it is hand-editable: zod/mini,
 * which a bundle trims to what is used, since every command reads the file
 * (loading all of zod cost `balsam ls` ~25 ms of its ~0.3 s). zod/mini says
 * only "Invalid input" unless given a locale: English, as zod has built in.
 */
z.config(en());
/**
 * What `balsam service` submits on its own. `maxQueuedLaunches` counts the
 * launches in flight (queued or running): a launcher already running drains
 * the same runnable jobs, so a second allocation would mostly start idle.
 */
export const ServicePolicySchema = z.object({
  /** Off: the service only reconciles (children, leases, queues, launch states). */
  autoSubmit: z._default(z.boolean(), true),
  queue: z._default(z.string(), "default"),
  /** Account to charge; empty leaves the scheduler's default. */
  project: z._default(z.string(), ""),
  maxQueuedLaunches: z._default(z.int().check(z.minimum(0)), 1),
  /** Largest allocation the service asks for. */
  maxNodes: z._default(z.int().check(z.positive()), 1),
  wallTimeMinutes: z._default(z.int().check(z.positive()), 30),
  /** Runnable jobs needed before an allocation is worth its queue wait. */
  minRunnableJobs: z._default(z.int().check(z.positive()), 1),
  jobMode: z._default(z.enum(["serial", "mpi"]), "serial"),
  /** Workflows the submitted launchers run; empty means all (`--consume-all`). */
  wfFilter: z._default(z.array(z.string().check(z.minLength(1))), []),
  schedFlags: z._default(z.string(), ""),
  intervalSeconds: z._default(z.number().check(z.positive()), 5),
});

export type ServicePolicy = z.infer<typeof ServicePolicySchema>;

/**
 * A launcher renews its leases every max(200 ms, ttl/3): below about 600 ms
 * the 200 ms floor plus one write (tens of ms on FerretDB) no longer renews
 * before the lease lapses, so 1 s keeps a margin (the tests use 2 s).
 */
export const LEASE_TTL_MS_MIN = 1000;
/** Node fires a timer longer than 2^31-1 ms (24.8 days) at once; a day is already far past any sane lease or grace. */
export const MAX_TIMER_MS = 24 * 60 * 60 * 1000;

/**
 * The launcher's environment overrides, checked before it connects:
 * `BALSAM_LEASE_TTL_MS` (lease length), `BALSAM_KILL_GRACE_MS` (a job's
 * SIGTERM → SIGKILL) and `BALSAM_STOP_GRACE_MS` (how long a stop asked by a
 * signal may take before the launcher exits regardless) and
 * `BALSAM_CLAIM_AFTER_MS` (how long a job may run before its launcher
 * records it RUNNING; 0 claims every job before it starts) and
 * `BALSAM_WRITE_BACKLOG` (state writes that may wait for the database
 * before the launcher starts no new job; default 500). A value out of
 * range is a usage error, not a launcher that starts and then hangs or loops
 * on Redis's refusals.
 */
export function launcherEnv(env: NodeJS.ProcessEnv = process.env): { leaseTtlMs?: number; killGraceMs?: number; stopGraceMs?: number; claimAfterMs?: number; writeBacklog?: number } {
  return {
    writeBacklog: envWhole(env, "BALSAM_WRITE_BACKLOG", 1, 1_000_000, "a whole number of writes"),
    claimAfterMs: envMs(env, "BALSAM_CLAIM_AFTER_MS", 0, CLAIM_AFTER_MS_MAX),
    leaseTtlMs: envMs(env, "BALSAM_LEASE_TTL_MS", LEASE_TTL_MS_MIN),
    killGraceMs: envMs(env, "BALSAM_KILL_GRACE_MS", 0),
    stopGraceMs: envMs(env, "BALSAM_STOP_GRACE_MS", 1000),
  };
}

/**
 * A job runs ahead of its claim under its queue entry's lock, which lapses
 * 30 s after a launcher dies (or sooner with a shorter lease): the claim must
 * come well inside that.
 */
export const CLAIM_AFTER_MS_MAX = 10_000;

function envMs(env: NodeJS.ProcessEnv, name: string, min: number, max = MAX_TIMER_MS): number | undefined {
  return envWhole(env, name, min, max, "a whole number of milliseconds");
}

function envWhole(env: NodeJS.ProcessEnv, name: string, min: number, max: number, what: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  const n = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!(n >= min && n <= max)) {
    throw new UsageError(`${name} must be ${what} from ${min} to ${max}, not '${raw}'`);
  }
  return n;
}

/** Past this a GPU count is a typo: the densest nodes today hold 16 devices (Aurora: 6 GPUs × 2 tiles = 12). */
export const MAX_GPUS_PER_NODE = 1024;

export const SettingsSchema = z.object({
  version: z.literal(1),
  mongoUrl: z.string().check(z.minLength(1, "must not be empty")),
  redisUrl: z.string().check(z.minLength(1, "must not be empty")),
  dbName: z.string().check(z.regex(/^[A-Za-z0-9_-]{1,60}$/, "use 1-60 letters, digits, _ or -")),
  queuePrefix: z._default(z.string().check(z.minLength(1, "must not be empty")), "balsam"),
  /** Generated by `init` for the local redis-server; required with --listen-all. */
  redisPassword: z._default(z.string(), ""),
  /**
   * Generated by `init` for the local MongoDB-wire server: every connection
   * authenticates (SCRAM) as user `balsam` in `admin`. A database made before
   * it existed gets one the next time its server starts.
   */
  mongoPassword: z._default(z.string(), ""),
  /** Launcher leases lapse after this long without a heartbeat. */
  leaseTtlMs: z._default(z.int().check(z.minimum(LEASE_TTL_MS_MIN), z.maximum(MAX_TIMER_MS)), 180_000),
  /**
   * A job whose launcher's lease lapses this many times is FAILED instead of
   * restarted: a job that takes its launcher down (or a launcher bug it
   * trips) would otherwise run for ever. Restarts after a time limit
   * (auto_timeout_retry) do not count: checkpointed jobs rely on them.
   */
  maxLeaseLapses: z._default(z.int().check(z.positive()), DEFAULT_MAX_LEASE_LAPSES),
  /** Batch scheduler used by submit-launch and service. */
  scheduler: z._default(z.enum(["slurm", "cobalt", "pbs", "lsf", "local"]), "local"),
  /** MPI implementation for mpi-mode launchers; auto = detect from `mpirun --version`. */
  mpi: z._default(z.enum(["auto", "openmpi", "mpich", "cray", "slurm"]), "auto"),
  /**
   * GPUs on each compute node of this site (Polaris 4, Aurora 12 tiles).
   * Launchers use it when not given `--gpus-per-node` or
   * `BALSAM_GPUS_PER_NODE`, before discovering; and a job needing more GPUs
   * on one node (gpus_per_rank × ranks_per_node) is refused when it is added
   * or modified, and failed by a launcher that meets one made before.
   * Unset: launchers discover their GPUs and no job is refused up front.
   */
  gpusPerNode: z.optional(z.int().check(z.minimum(0), z.maximum(MAX_GPUS_PER_NODE))),
  /** Which variable hands a job its GPUs: nvidia `CUDA_VISIBLE_DEVICES`, intel `ZE_AFFINITY_MASK`; auto decides from how they were found. */
  gpuVendor: z._default(z.enum(["auto", "nvidia", "intel"]), "auto"),
  /** The auto-scheduling policy of `balsam service`. */
  service: z.prefault(ServicePolicySchema, {}),
});

export type Settings = z.infer<typeof SettingsSchema>;

/** Who a recorded server process is (see services/dbserver/identity.ts), and the machine it runs on. */
export interface RecordedProcess {
  pid: number;
  port: number;
  /** The address it listens on: 127.0.0.1, or 0.0.0.0 with --listen-all. */
  host: string;
  url: string;
  machine?: string;
  bootId?: string;
  startTicks?: string;
  exe?: string;
}

/**
 * The lapse cap: `BALSAM_MAX_LEASE_LAPSES` (one-off overrides, tests), else
 * the settings' `maxLeaseLapses`, else DEFAULT_MAX_LEASE_LAPSES.
 */
export function resolveMaxLeaseLapses(settings: Pick<Settings, "maxLeaseLapses"> | undefined, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.BALSAM_MAX_LEASE_LAPSES;
  if (raw === undefined || raw === "") return settings?.maxLeaseLapses ?? DEFAULT_MAX_LEASE_LAPSES;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || n < 1) throw new ConfigError(`BALSAM_MAX_LEASE_LAPSES must be a whole number ≥ 1, not '${raw}'`);
  return n;
}

export interface ServerInfo {
  mongo?: RecordedProcess & { kind: "mongod" | "ferretdb" };
  redis?: RecordedProcess;
}

export function isLocal(url: string): boolean {
  return url === "local";
}

export function balsamHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.BALSAM_HOME ? resolve(env.BALSAM_HOME) : join(homedir(), ".balsam");
}

function knownDbsFile(env: NodeJS.ProcessEnv): string {
  return join(balsamHome(env), "databases.json");
}

export function readKnownDatabases(env: NodeJS.ProcessEnv = process.env): string[] {
  const file = knownDbsFile(env);
  if (!existsSync(file)) return [];
  try {
    const parsed = z.array(z.string()).safeParse(JSON.parse(readFileSync(file, "utf8")));
    return parsed.success ? parsed.data : [];
  } catch {
    return [];
  }
}

export function registerDatabase(dir: string, env: NodeJS.ProcessEnv = process.env): void {
  const list = readKnownDatabases(env).filter((d) => d !== dir);
  list.push(dir);
  makeDirs(balsamHome(env), []);
  writeFileSync(knownDbsFile(env), JSON.stringify(list, null, 2) + "\n");
}

export interface InitOptions {
  mongoUrl?: string;
  redisUrl?: string;
  dbName?: string;
  queuePrefix?: string;
}

/** What `init`'s options are called where a user reads them. */
const INIT_OPTION_NAMES: Record<string, string> = { mongoUrl: "MongoDB URL", redisUrl: "Redis URL", dbName: "database name", queuePrefix: "queue prefix" };

/**
 * Creates a database directory; refuses a directory that already is one.
 * All or nothing: a directory that cannot be made leaves nothing behind.
 */
export function initDatabaseDir(path: string, opts: InitOptions = {}, env: NodeJS.ProcessEnv = process.env): { dir: string; settings: Settings } {
  // resolve("") is the current directory: a typo must not turn it into a database.
  if (!path.trim()) throw new UsageError(`init needs a directory path, not '${path}'`, { hint: "e.g. balsam init ~/mydb" });
  const dir = resolve(path);
  if (existsSync(join(dir, SETTINGS_FILE))) {
    throw new UsageError(`${dir} is already a Balsam database`, { hint: `use it with: export BALSAM_DB_PATH=${dir}` });
  }
  const given = {
    version: 1,
    mongoUrl: opts.mongoUrl ?? "local",
    redisUrl: opts.redisUrl ?? "local",
    dbName: opts.dbName ?? "balsam",
    queuePrefix: opts.queuePrefix ?? "balsam",
  };
  const parsed = SettingsSchema.safeParse({ ...given, redisPassword: newSecret(), mongoPassword: newSecret() });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue?.path[0] ?? "");
    const value = (given as Record<string, unknown>)[key];
    throw new UsageError(`${INIT_OPTION_NAMES[key] ?? key} '${String(value)}' is not allowed: ${issue?.message ?? "invalid"}`);
  }
  const settings = parsed.data;
  // A Redis URL of none of the known forms, or a prefix that would put a cluster's queues in one slot, is said before anything is made.
  if (!isLocal(settings.redisUrl)) checkQueuePrefix(parseRedisUrl(settings.redisUrl), settings.queuePrefix);
  const created: string[] = [];
  try {
    makeDirs(dir, created);
    for (const sub of ["data", "log", "templates", "launches"]) makeDirs(join(dir, sub), created);
    writeSettings(dir, settings);
    created.push(join(dir, SETTINGS_FILE));
    registerDatabase(dir, env);
  } catch (err) {
    for (const p of created.reverse()) rmSync(p, { recursive: true, force: true });
    throw new ConfigError(`cannot create the database directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
  return { dir, settings };
}

/**
 * `mkdir -p` one level at a time, recording what it made in `created`.
 * Node's recursive mkdirSync spins when a parent exists but refuses
 * children — `/proc/nope` gets ENOENT under an existing `/proc` and was
 * observed spinning 90 s — while here each level is tried once.
 */
function makeDirs(dir: string, created: string[]): void {
  try {
    mkdirSync(dir);
    created.push(dir);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST" && statSync(dir).isDirectory()) return;
    const parent = dirname(dir);
    if (code !== "ENOENT" || parent === dir) throw err;
  }
  makeDirs(dirname(dir), created);
  mkdirSync(dir);
  created.push(dir);
}

/** A password for a local server: 144 random bits, URL-safe. */
export function newSecret(): string {
  return randomBytes(18).toString("base64url");
}

export function writeSettings(dir: string, settings: Settings): void {
  const file = join(dir, SETTINGS_FILE);
  // Mode 0600: the file holds the Redis password.
  writeFileSync(file, JSON.stringify(settings, null, 2) + "\n", { mode: 0o600 });
  chmodSync(file, 0o600);
}

export function readSettings(dir: string): Settings {
  const file = join(dir, SETTINGS_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const parsed = SettingsSchema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new ConfigError(`${file}: ${first ? `${first.path.join(".")}: ${first.message}` : "invalid settings"}`);
  }
  return parsed.data;
}

/**
 * The database directory named by BALSAM_DB_PATH. Every command but `init`
 * and `which --list` needs one.
 */
export function resolveDbPath(env: NodeJS.ProcessEnv = process.env): string {
  const p = env.BALSAM_DB_PATH;
  if (!p) {
    throw new ConfigError("BALSAM_DB_PATH is not set", {
      hint: "create a database with `balsam init DIR`, then `export BALSAM_DB_PATH=DIR` (`balsam which --list` shows known ones)",
    });
  }
  const dir = resolve(p);
  if (!existsSync(join(dir, SETTINGS_FILE))) {
    throw new ConfigError(`BALSAM_DB_PATH=${p} is not a Balsam database (no ${SETTINGS_FILE})`, {
      hint: "create one with `balsam init DIR` or point BALSAM_DB_PATH at an existing one (`balsam which --list`)",
    });
  }
  return dir;
}

export function readServerInfo(dir: string): ServerInfo {
  const file = join(dir, SERVER_INFO_FILE);
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, "utf8")) as ServerInfo;
  } catch {
    return {};
  }
}

export function writeServerInfo(dir: string, info: ServerInfo): void {
  writeFileSync(join(dir, SERVER_INFO_FILE), JSON.stringify(info, null, 2) + "\n", { mode: 0o600 });
}
