/**
 * Launcher batch jobs: rendering a scheduler's template into a script in the
 * database directory, submitting it, recording it in `queuedLaunches`, and
 * refreshing the recorded states from the scheduler. Used by
 * `balsam submit-launch`, `balsam ls queues` and `balsam service`.
 */
import { parseTags, type Tags } from "../../libs/models/index.js";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Balsam } from "../../libs/client/index.js";
import type { Settings } from "../../libs/config/index.js";
import { BalsamError, ConfigError, NotFoundError, UsageError, coerceError } from "../../libs/errors/index.js";
import { isValidWorkflow } from "../../libs/queue/index.js";
import {
  OPEN_LAUNCH_STATES,
  findExecutable,
  lookupState,
  renderTemplate,
  schedulerAdapter,
  splitSchedFlags,
  templateValues,
  type LaunchState,
  type SchedulerAdapter,
} from "../../libs/platform/index.js";
import { countRunnableOrWaiting, insertQueuedLaunch, launchesIn, setLaunchStateIf, type QueuedLaunchDoc, type Store } from "../../libs/store/index.js";

/** bin/balsam.js of this package: the batch script runs it by absolute path. */
export const BALSAM_BIN = resolve(fileURLToPath(import.meta.url), "../../../../bin/balsam.js");

/** What `balsam submit-launch` (or the service's policy) asks for, unchecked. */
export interface SubmitLaunchOptions {
  /** Nodes of the allocation; a whole number ≥ 1. */
  nodes: string | number;
  queue: string;
  /** Wall time of the allocation in minutes; a whole number ≥ 1. */
  minutes: string | number;
  /** Account to charge; empty: the scheduler's default. */
  project: string;
  /** serial or mpi. */
  jobMode: string;
  /** Comma-separated workflows; unset: every workflow (`--consume-all`). */
  wfFilter?: string | readonly string[];
  /** Extra flags for the submit command, as one shell-like string. */
  schedFlags?: string;
  /** `--tag KEY=VALUE` words: the launcher runs only jobs with these tags. */
  tags?: readonly string[];
}

export interface ResolvedSubmitLaunch {
  nodes: number;
  queue: string;
  wallTimeMinutes: number;
  project: string;
  jobMode: "serial" | "mpi";
  workflows: string[];
  schedFlags: string[];
  /** The launcher's `--tag`s (Balsam 2's filter_tags); undefined: any job. */
  tags?: Tags;
}

function wholePositive(v: string | number, flag: string): number {
  const text = String(v).trim();
  if (!/^[-+]?\d+$/.test(text)) throw new UsageError(`${flag} must be a whole number ≥ 1, not '${String(v)}'`);
  const n = Number.parseInt(text, 10);
  if (n < 1) throw new UsageError(`${flag} must be a whole number ≥ 1, not ${n}`);
  // Past 2^53 the number is no longer the one typed (99999999999999999999 became 1e20).
  if (!Number.isSafeInteger(n)) throw new UsageError(`${flag} must be a whole number ≤ ${Number.MAX_SAFE_INTEGER}, not ${text}`);
  return n;
}

/** Checks everything the command line says before any server or scheduler is asked. */
export function resolveSubmitLaunchOptions(o: SubmitLaunchOptions): ResolvedSubmitLaunch {
  if (o.jobMode !== "serial" && o.jobMode !== "mpi") throw new UsageError(`--job-mode must be serial or mpi, not '${o.jobMode}'`);
  const nodes = wholePositive(o.nodes, "-n/--nodes");
  const wallTimeMinutes = wholePositive(o.minutes, "-t/--time-minutes");
  if (!o.queue.trim()) throw new UsageError("-q/--queue must not be empty");
  // These reach the batch script (site templates put them on `#SBATCH` lines)
  // and the scheduler's command line: a newline there starts a command.
  for (const [flag, v] of [["-q/--queue", o.queue], ["-A/--project", o.project], ["--sched-flags", o.schedFlags ?? ""]] as const) {
    if (/[\x00-\x1f\x7f]/.test(v.trim())) throw new UsageError(`${flag} contains a control character (${JSON.stringify(v)}); it cannot go into a batch script`);
  }
  const raw = o.wfFilter === undefined ? [] : typeof o.wfFilter === "string" ? o.wfFilter.split(",") : [...o.wfFilter];
  const workflows = raw.map((s) => s.trim()).filter(Boolean);
  if (o.wfFilter !== undefined && workflows.length === 0) throw new UsageError("--wf-filter names no workflow");
  for (const wf of workflows) {
    if (!isValidWorkflow(wf)) throw new UsageError(`'${wf}' is not a valid workflow name`, { hint: "use letters, digits, '_', '.' or '-'" });
  }
  return {
    nodes,
    queue: o.queue.trim(),
    wallTimeMinutes,
    project: o.project.trim(),
    jobMode: o.jobMode,
    workflows,
    schedFlags: splitSchedFlags(o.schedFlags ?? ""),
    tags: parseTags(o.tags),
  };
}

/** The database's scheduler: `BALSAM_SCHEDULER` (tests, one-off overrides), else the settings' `scheduler`. */
export function resolveScheduler(settings: Pick<Settings, "scheduler"> | undefined, env: NodeJS.ProcessEnv = process.env): SchedulerAdapter {
  const fromEnv = env.BALSAM_SCHEDULER?.trim();
  return schedulerAdapter(fromEnv || settings?.scheduler || "local");
}

/** Where `cmd` (a bare name, or a path) is, for the service: found on `env.PATH`. */
export function findOnPath(cmd: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return findExecutable(cmd, env.PATH, "/");
}

/**
 * The scheduler's template in `<db>/templates/<scheduler>.sh`, written from
 * the built-in default on first use so a site can edit it; an edited one is
 * never overwritten.
 */
export function ensureTemplate(dbPath: string, adapter: SchedulerAdapter): { path: string; text: string } {
  const dir = join(dbPath, "templates");
  const path = join(dir, `${adapter.name}.sh`);
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(path, adapter.defaultTemplate, { flag: "wx" });
  }
  return { path, text: readFileSync(path, "utf8") };
}

/** Sortable and unique enough for one database: `20250101-120000-a1b2c3`. */
export function newLaunchId(now = new Date()): string {
  const t = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `${t}-${randomBytes(3).toString("hex")}`;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Set when the program could not be started at all (ENOENT, EACCES). */
  spawnError?: string;
  /** Killed for not answering within its time. */
  timedOut?: boolean;
}

/** How long a submit command may take: a busy slurmctld can take tens of seconds; a hung one must not hang the service. */
export const SUBMIT_TIMEOUT_MS = 60_000;

/**
 * A submission whose outcome is not known: the submit command did not answer
 * in time, or answered with no id it could be read from. The scheduler may
 * have queued the launch; nothing is recorded, and its script stays.
 */
export class MaybeQueuedError extends BalsamError {
  constructor(message: string, options: { hint?: string } = {}) {
    super("RUNTIME", message, options);
  }
}

/** Runs a scheduler command. Bounded: a hung scheduler must not hang the service. */
export function runCommand(argv: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
  const [cmd, ...args] = argv;
  return new Promise((res) => {
    execFile(
      cmd!,
      args,
      { env: opts.env ?? process.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (!err) return res({ code: 0, stdout, stderr });
        const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
        if (typeof e.code === "string") return res({ code: 127, stdout, stderr, spawnError: `${cmd}: ${e.code}` });
        const timedOut = e.killed ? ` (no answer within ${Math.round((opts.timeoutMs ?? 60_000) / 1000)} s)` : "";
        res({ code: typeof e.code === "number" ? e.code : 1, stdout, stderr: stderr + timedOut, ...(e.killed ? { timedOut: true } : {}) });
      },
    );
  });
}

function firstLines(s: string, n = 5): string {
  return s
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(0, n)
    .join(" / ");
}

export interface SubmitContext {
  dbPath: string;
  env?: NodeJS.ProcessEnv;
  submittedBy?: QueuedLaunchDoc["submittedBy"];
  /** Absolute node binary for the script; default this process's. */
  nodeBin?: string;
}

/** Refuses a launch that could only start and exit: its workflows hold nothing runnable or waiting. */
export async function checkWorkToDo(client: Balsam, workflows: readonly string[]): Promise<void> {
  if (workflows.length === 0) return;
  const n = await countRunnableOrWaiting(client.store, workflows);
  if (n === 0) {
    throw new NotFoundError(`no job of workflow ${workflows.join(",")} could run (none is runnable or waiting on parents)`, {
      hint: "`balsam ls --wf WF` shows its jobs; add some with `balsam job`",
    });
  }
}

/**
 * Renders the scheduler's template for this launch, submits it and records
 * it. Anything refused (no scheduler command here, nothing to run, the
 * scheduler's rejection) throws and leaves nothing recorded.
 */
export async function submitLaunch(client: Balsam, adapter: SchedulerAdapter, r: ResolvedSubmitLaunch, ctx: SubmitContext): Promise<QueuedLaunchDoc> {
  const env = ctx.env ?? process.env;
  if (!findOnPath(adapter.submitCommand, env)) {
    throw new ConfigError(`this machine has no '${adapter.submitCommand}' on PATH, so it cannot submit to ${adapter.name}`, {
      hint: `run this where ${adapter.name} is installed, or set "scheduler" in ${join(ctx.dbPath, "settings.json")}`,
    });
  }
  await checkWorkToDo(client, r.workflows);
  const template = ensureTemplate(ctx.dbPath, adapter);
  const now = new Date();
  const id = newLaunchId(now);
  const launchDir = join(ctx.dbPath, "launches", id);
  const scriptPath = join(launchDir, "launch.sh");
  const script = renderTemplate(
    template.text,
    templateValues({
      launchId: id,
      scheduler: adapter.name,
      nodes: r.nodes,
      queue: r.queue,
      project: r.project,
      wallTimeMinutes: r.wallTimeMinutes,
      jobMode: r.jobMode,
      workflows: r.workflows,
      tags: r.tags,
      dbPath: ctx.dbPath,
      launchDir,
      nodeBin: ctx.nodeBin ?? process.execPath,
      balsamBin: BALSAM_BIN,
    }),
    template.path,
  );
  mkdirSync(launchDir, { recursive: true });
  // Cobalt runs the script itself, so it must be executable.
  writeFileSync(scriptPath, script, { mode: 0o755 });
  const argv = adapter.submitArgv(scriptPath, {
    nodes: r.nodes,
    queue: r.queue,
    wallTimeMinutes: r.wallTimeMinutes,
    project: r.project,
    launchDir,
    schedFlags: r.schedFlags,
  });
  const res = await runCommand(argv, { env, cwd: launchDir, timeoutMs: SUBMIT_TIMEOUT_MS });
  if (res.timedOut) {
    throw new MaybeQueuedError(`${adapter.submitCommand} did not answer within ${SUBMIT_TIMEOUT_MS / 1000} s: the launch may be queued (its script is ${scriptPath}), though nothing is recorded`, {
      hint: `look for it in the scheduler's queue before submitting again; the command was: ${argv.join(" ")}`,
    });
  }
  if (res.code !== 0) {
    rmSync(launchDir, { recursive: true, force: true });
    const said = firstLines(res.stderr) || firstLines(res.stdout) || res.spawnError || `exit code ${res.code}`;
    throw new BalsamError("RUNTIME", `${adapter.submitCommand} refused the launch: ${said}`, { hint: `the command was: ${argv.join(" ")}` });
  }
  let schedulerId: string;
  try {
    schedulerId = adapter.parseSubmitOutput(res.stdout);
  } catch (err) {
    // Submitted, but with an id we cannot read: the script stays for the user to find.
    throw new MaybeQueuedError(coerceError(err).message, { hint: `the launch may be queued; its script is ${scriptPath}` });
  }
  const doc: QueuedLaunchDoc = {
    _id: id,
    schedulerId,
    scheduler: adapter.name,
    queue: r.queue,
    project: r.project,
    nodes: r.nodes,
    wallTimeMinutes: r.wallTimeMinutes,
    jobMode: r.jobMode,
    wfFilter: r.workflows,
    state: "queued",
    scriptPath,
    launchDir,
    submittedBy: ctx.submittedBy ?? "submit-launch",
    host: hostname(),
    submittedAt: now,
    updatedAt: now,
    exitCode: null,
  };
  await insertQueuedLaunch(client.store, doc);
  return doc;
}

export interface LaunchChange {
  launch: QueuedLaunchDoc;
  from: string;
  to: LaunchState;
}

export interface RefreshResult {
  changes: LaunchChange[];
  /** One line per scheduler that could not be asked; its launches keep their recorded state. */
  errors: string[];
}

function readExitCode(doc: QueuedLaunchDoc): number | null {
  if (!doc.launchDir) return null;
  try {
    const t = readFileSync(join(doc.launchDir, "exit-code"), "utf8").trim();
    return /^\d+$/.test(t) ? Number(t) : null;
  } catch {
    return null;
  }
}

/**
 * Asks each scheduler about the launches still open and records what
 * changed. A launch the scheduler no longer lists has left its queue: it
 * finished when its script wrote exit code 0, and failed when it wrote
 * another or none (Cobalt, PBS and the local scheduler do not say how a job
 * ended; a script killed at its walltime writes nothing).
 */
export async function refreshLaunchStates(store: Store, env: NodeJS.ProcessEnv = process.env): Promise<RefreshResult> {
  const open = await launchesIn(store, OPEN_LAUNCH_STATES);
  const bySched = new Map<string, QueuedLaunchDoc[]>();
  for (const d of open) bySched.set(d.scheduler, [...(bySched.get(d.scheduler) ?? []), d]);
  const result: RefreshResult = { changes: [], errors: [] };
  for (const [name, all] of bySched) {
    let adapter: SchedulerAdapter;
    try {
      adapter = schedulerAdapter(name);
    } catch (err) {
      result.errors.push(coerceError(err).message);
      continue;
    }
    if (adapter.hostBound) {
      // Another host's process table says nothing of its launches: asked there, they would all read as gone, for good.
      const here = hostname();
      const elsewhere = all.filter((d) => d.host !== undefined && d.host !== here);
      if (elsewhere.length) result.errors.push(`${elsewhere.length} ${name} launch(es) of another host (${[...new Set(elsewhere.map((d) => d.host))].join(", ")}) can be refreshed only there`);
    }
    const docs = adapter.hostBound ? all.filter((d) => d.host === undefined || d.host === hostname()) : all;
    // Chunks keep the command line well under ARG_MAX on a busy database.
    for (let i = 0; i < docs.length; i += 200) {
      const chunk = docs.slice(i, i + 200);
      const argv = adapter.statusArgv(chunk.map((d) => d.schedulerId));
      const res = await runCommand(argv, { env, timeoutMs: 30_000 });
      let states: Map<string, LaunchState>;
      if (res.code === 0) states = adapter.parseStatus(res.stdout);
      // An error for ids it no longer knows: qstat and bjobs still list, on stdout, the others asked about with them.
      else if (!res.spawnError && adapter.goneOnError.test(res.stderr)) states = adapter.parseStatus(res.stdout);
      else {
        result.errors.push(`cannot refresh ${name} launches: ${argv[0]} ${res.spawnError ?? (firstLines(res.stderr) || `exit code ${res.code}`)}`);
        continue;
      }
      for (const d of chunk) {
        let to = lookupState(states, d.schedulerId);
        const exitCode = to === undefined || to === "finished" ? readExitCode(d) : null;
        // Gone without the exit code its script writes last: it did not end on its own (its walltime, its node, a qdel).
        if (to === undefined) to = exitCode === 0 ? "finished" : "failed";
        else if (to === "finished" && exitCode !== null && exitCode !== 0) to = "failed";
        if (to === d.state) continue;
        const now = new Date();
        // Conditioned on the state read, so two refreshers never record a change twice.
        if (await setLaunchStateIf(store, d._id, d.state, { state: to, updatedAt: now, ...(exitCode !== null ? { exitCode } : {}) })) result.changes.push({ launch: { ...d, state: to, updatedAt: now }, from: d.state, to });
      }
    }
  }
  return result;
}
