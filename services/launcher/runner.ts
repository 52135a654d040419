import { HelperSpawner, InProcessSpawner, helperPath, jobTableDir, monoMs, type Spawner } from "./spawner.js";
import { WATCHDOG } from "./watchdog.js";
import { cpuMsOf } from "../../libs/platform/proc.js";
import { findExecutable } from "../../libs/platform/executable.js";
import { execa, execaSync, type ResultPromise } from "execa";
import { closeSync, openSync, readSync, fstatSync, statSync } from "node:fs";
import { isAbsolute } from "node:path";
import type { Writable } from "node:stream";

/**
 * Starts job processes (and the only module that imports execa, for the
 * watchdog). stdout and
 * stderr share one file descriptor so their lines interleave as written.
 */
export interface RunSpec {
  argv: string[];
  /** Run through `bash -c` (apps with an envscript). */
  shellCommand?: string;
  cwd: string;
  /** Added to the launcher's own environment (read once, when the supervisor starts). */
  env: Record<string, string>;
  outFile: string;
  /** Make `cwd` first (in the helper when there is one: the launcher's time is its throughput). */
  mkdir?: boolean;
  /** Kill after this long (preprocess/postprocess scripts). */
  timeoutMs?: number;
  /** The job this process belongs to: it is killed at the job's fence deadline (fence.ts). */
  fenceKey?: string;
}

/** What the supervisor asks of the launcher's fence (fence.ts). */
export interface FenceView {
  /** The job's fence deadline, CLOCK_MONOTONIC ms; undefined when it has none. */
  deadline(key: string): number | undefined;
  /** Why a job's processes were killed at its deadline: its RESTART_READY message. */
  why(key: string): string;
}

export interface RunHandle {
  pid: number | undefined;
  done: Promise<RunOutcome>;
  /** SIGTERM to the job's process group, then SIGKILL after `graceMs` if its main process has not exited. */
  terminate(graceMs: number): void;
}

export interface RunOutcome {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Could not start at all (missing executable …). */
  spawnError?: string;
  /** Killed with the helper that started it, or at its fence deadline: not the job's doing, so it runs again. */
  lost?: string;
  /** Killed (or never started) because its fence deadline passed: its launcher may no longer own it. */
  fenced?: boolean;
  /** The output file's size when the process ended, where the spawner told it (the helper does): 0 spares reading it. */
  outputBytes?: number;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // The group is gone already.
  }
}

/**
 * Runs a launcher's job processes so that none outlives the launcher (a
 * restarted job must never share its working directory with a live earlier
 * instance). Each job starts in its own session, so its process group is its
 * own and a group kill reaches its children, and is registered with the
 * watchdog, which ends all of it when the launcher dies. Under `setpriv
 * --pdeathsig SIGKILL` too when util-linux has it: the kernel then ends the
 * job's main process even in the moment before it is registered, or if the
 * watchdog itself was killed; it costs an exec (~1 ms here) but no launcher
 * CPU (2.6–3.2 ms per spawn either way, measured). A job's leftover
 * background processes are killed when its main process exits: the node's
 * share it held goes to the next job.
 */
export class ProcessSupervisor {
  private state: "running" | "closed" = "running";
  private reaperBroken = false;
  private watchdogSpentMs: number | undefined;
  private told = "";
  private readonly foundCache = new Map<string, string>();
  private readonly baseEnv: Record<string, string>;
  private spawner: Spawner;
  /** Live processes per fence key (a job's id): what a moved deadline reaches. */
  private readonly fenced = new Map<string, Set<FencedProc>>();

  private constructor(
    private readonly deathSignalPrefix: readonly string[],
    private readonly reaper: ResultPromise | undefined,
    private readonly log: (line: string) => void,
    private readonly opts: SupervisorOptions,
  ) {
    this.baseEnv = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined));
    const helper = helperPath();
    const dir = reaper ? jobTableDir() : undefined;
    const tables = dir ? { dir, tell: (line: string) => this.tellNow(line) } : undefined;
    this.spawner = helper ? new HelperSpawner(helper, log, opts.termLeadMs, tables) : new InProcessSpawner(this.baseEnv, deathSignalPrefix);
  }

  static start(log: (line: string) => void, opts: SupervisorOptions = {}): ProcessSupervisor {
    const setpriv = findExecutable("setpriv", process.env.PATH, "/");
    let prefix: string[] = [];
    // util-linux before 2.33 has setpriv without --pdeathsig.
    if (setpriv && execaSync(setpriv, ["--pdeathsig", "SIGKILL", "--", "true"], { reject: false, stdio: "ignore" }).exitCode === 0) {
      prefix = [setpriv, "--pdeathsig", "SIGKILL", "--"];
    }
    let reaper: ResultPromise | undefined;
    const bash = findExecutable("bash", process.env.PATH, "/");
    if (bash) {
      reaper = execa(bash, ["-c", WATCHDOG], { stdin: "pipe", stdout: "ignore", stderr: "ignore", detached: true, cleanup: false, reject: false, buffer: false });
      if (reaper.pid === undefined) reaper = undefined;
    }
    const s = new ProcessSupervisor(prefix, reaper, log, opts);
    // The helper gives each job its parent-death signal itself.
    const deathSignal = s.spawner instanceof HelperSpawner || prefix.length > 0;
    const missing = [
      deathSignal ? "" : "no setpriv with --pdeathsig (util-linux ≥ 2.33) to end a job's main process",
      reaper ? "" : "no bash for the watchdog that ends a job's other processes",
    ].filter(Boolean);
    if (missing.length) log(`job processes may outlive this launcher if it is killed: ${missing.join("; ")}`);
    else log(`job processes start through ${s.spawner.how} and end with this launcher (parent-death signal, watchdog pid ${reaper!.pid})`);
    reaper?.stdin?.on("error", (err: Error) => s.reaperFailed(err));
    return s;
  }

  private reaperFailed(err: Error): void {
    if (this.reaperBroken) return;
    this.reaperBroken = true;
    if (this.state === "running") this.log(`the watchdog stopped (${err.message}): job processes may outlive this launcher if it is killed`);
  }

  /**
   * Lines for the watchdog are sent once per turn of the event loop: a write
   * is a system call, and each job adds two or three lines (measured: one
   * write per line was 6% of a launcher's CPU on no-op jobs). A process
   * registered a turn late is still ended if the launcher dies meanwhile: its
   * parent-death signal does that.
   */
  private tell(line: string): void {
    if (this.told === "") setImmediate(() => this.flushTold());
    this.told += line;
  }

  /** A line that must reach the watchdog before anything else happens (a job table's path), with the lines waiting before it. */
  private tellNow(line: string): void {
    this.told += line;
    this.flushTold();
  }

  private flushTold(): void {
    const lines = this.told;
    this.told = "";
    const stdin = this.reaper?.stdin as Writable | null | undefined;
    if (!stdin || this.reaperBroken || stdin.destroyed) return;
    stdin.write(lines);
  }

  /**
   * Moves the fence deadline of every live process of these jobs: the
   * helper keeps the deadlines of what it started, the watchdog those of
   * processes started from the launcher.
   */
  moveDeadlines(keys: readonly string[], deadline: number): void {
    const byHelper = new Map<Spawner, number[]>();
    const byWatchdog: number[] = [];
    for (const key of keys) {
      for (const p of this.fenced.get(key) ?? []) {
        if (p.spawner.keepsDeadlines) byHelper.set(p.spawner, [...(byHelper.get(p.spawner) ?? []), p.id]);
        else if (p.pid !== undefined) byWatchdog.push(p.pid);
      }
    }
    for (const [spawner, ids] of byHelper) spawner.moveDeadlines(ids, deadline);
    if (byWatchdog.length) this.tell(`d ${wallUs(deadline)} ${byWatchdog.join(" ")}\n`);
  }

  run(spec: RunSpec): RunHandle {
    if (this.state !== "running") throw new Error("the process supervisor is closed");
    const key = spec.fenceKey;
    const deadline = key === undefined ? undefined : this.opts.fence?.deadline(key);
    // Past its deadline the job may be another launcher's already: nothing more of it starts here.
    if (key !== undefined && deadline !== undefined && monoMs() >= deadline) return fencedStart(this.opts.fence!.why(key));
    const command = spec.shellCommand ? ["bash", "-c", spec.shellCommand] : [...spec.argv];
    // Resolved here, on the job's PATH, as a shell would: the helper and setpriv exec a path.
    const path = this.found(command[0]!, spec.env.PATH ?? this.baseEnv.PATH, spec.cwd);
    if (path === undefined) return failedStart(`${command[0]}: command not found`);
    command[0] = path;
    let pid: number | undefined;
    let exited = false;
    let terminated = false;
    let timedOut = false;
    let fenced = false;
    let listed = false;
    let grace: number | undefined;
    let timer: NodeJS.Timeout | undefined;
    const kill = (graceMs: number) => {
      signalGroup(pid!, "SIGTERM");
      const t = setTimeout(() => {
        if (!exited) signalGroup(pid!, "SIGKILL");
      }, graceMs);
      t.unref();
    };
    let settle: (o: RunOutcome) => void = () => undefined;
    const done = new Promise<RunOutcome>((resolve) => (settle = resolve));
    const handle: RunHandle = {
      get pid() {
        return pid;
      },
      done,
      terminate(graceMs: number) {
        if (exited || terminated) return;
        terminated = true;
        // Not started yet: signalled the moment its pid is known.
        if (pid === undefined) grace = graceMs;
        else kill(graceMs);
      },
    };
    const spawner = this.spawnerFor();
    const proc: FencedProc = { id: 0, spawner };
    if (key !== undefined) this.fenced.set(key, (this.fenced.get(key) ?? new Set()).add(proc));
    proc.id = spawner.run(
      { argv: command, cwd: spec.cwd, env: spec.env, outFile: spec.outFile, mkdir: Boolean(spec.mkdir), deadline },
      (m) => {
        if (m.t === "started") {
          pid = proc.pid = m.pid;
          // The output file goes with it when the watchdog keeps its deadline: it says there when it fences the job.
          // The helper fences its own jobs, and each byte costs the watchdog a read (bash reads a pipe a byte at a time).
          // A job in the helper's job table is found there by the watchdog: nothing to tell.
          if (!m.listed) this.tell(`+ ${pid}${spawner.keepsDeadlines || spec.outFile.includes("\n") ? "" : ` ${spec.outFile}`}\n`);
          listed = Boolean(m.listed);
          if (deadline !== undefined && !spawner.keepsDeadlines) this.tell(`d ${wallUs(deadline)} ${pid}\n`);
          if (grace !== undefined) kill(grace);
          return;
        }
        if (m.t === "fenced") {
          fenced = true;
          return;
        }
        exited = true;
        if (key !== undefined) this.fenced.get(key)?.delete(proc);
        if (key !== undefined && this.fenced.get(key)?.size === 0) this.fenced.delete(key);
        // Killed by the watchdog at its deadline (no helper to say so): the launcher's clock tells.
        if (key !== undefined && m.t === "exit" && m.signal === "SIGKILL" && deadline !== undefined && monoMs() >= (this.opts.fence?.deadline(key) ?? Infinity)) fenced = true;
        if (timer) clearTimeout(timer);
        if (pid !== undefined) {
          if (!spawner.endsGroups) signalGroup(pid, "SIGKILL");
          // Rare (kills, time limits) and worth a /proc scan: what the job left outside its group, e.g. an mpirun's ranks after the mpirun was SIGKILLed.
          if (terminated) this.tell(`! ${pid}\n`);
          if (!listed) this.tell(`- ${pid}\n`);
        }
        if (m.t === "failed") settle({ exitCode: null, signal: null, timedOut: false, spawnError: m.message });
        else if (fenced) settle({ exitCode: null, signal: "SIGKILL", timedOut, lost: this.opts.fence!.why(key!), fenced: true });
        else if (m.t === "lost") settle({ exitCode: null, signal: "SIGKILL", timedOut, lost: m.message });
        else settle({ exitCode: m.code, signal: m.signal, timedOut, outputBytes: m.outputBytes });
      },
    );
    if (spec.timeoutMs) {
      timer = setTimeout(() => {
        timedOut = true;
        handle.terminate(5000);
      }, spec.timeoutMs);
    }
    return handle;
  }

  /** A helper that keeps dying (a broken build, a hostile kill) is given up for spawning from the launcher. */
  private spawnerFor(): Spawner {
    if (this.spawner instanceof HelperSpawner && this.spawner.deaths >= 3) {
      const old = this.spawner;
      this.spawner = new InProcessSpawner(this.baseEnv, this.deathSignalPrefix);
      this.log(`the spawn helper died ${old.deaths} times: job processes now start through ${this.spawner.how}`);
      void old.close();
    }
    return this.spawner;
  }

  /** CPU used by the spawn helper (a process of its own), in ms. */
  spawnCpuMs(): number {
    return this.spawner.cpuMs();
  }

  /** CPU of the job processes the spawn helper started and reaped, in ms (0 without a helper). */
  jobsCpuMs(): number {
    return this.spawner.jobsCpuMs();
  }

  /** CPU used by the watchdog (a process of its own, not in this one's), in ms; read before it is stopped. */
  watchdogCpuMs(): number {
    return this.watchdogSpentMs ?? cpuMsOf(this.reaper?.pid);
  }

  /** findExecutable, remembered for bare names (per PATH) and absolute paths: every job of an app names the same one. One removed since fails at its exec instead (the helper says why). */
  private found(cmd: string, path: string | undefined, cwd: string): string | undefined {
    // A relative path depends on the job's directory: looked up each time.
    if (cmd.includes("/") && !isAbsolute(cmd)) return findExecutable(cmd, path, cwd);
    const key = isAbsolute(cmd) ? cmd : `${path ?? ""}\0${cmd}`;
    let hit = this.foundCache.get(key);
    if (hit === undefined) {
      hit = findExecutable(cmd, path, cwd);
      // Only a hit is kept: an executable installed while the launcher runs is found next time.
      if (hit !== undefined) this.foundCache.set(key, hit);
    }
    return hit;
  }

  /** Stops the watchdog (it ends any job still registered). Safe to call twice. */
  async close(): Promise<void> {
    if (this.state === "closed") return;
    this.state = "closed";
    // After the jobs: the helper's exit SIGKILLs the processes it started (their parent-death signal).
    await this.spawner.close();
    const reaper = this.reaper;
    if (!reaper) return;
    this.flushTold();
    this.watchdogSpentMs = cpuMsOf(reaper.pid);
    (reaper.stdin as Writable | null)?.end();
    const t = setTimeout(() => reaper.kill("SIGKILL"), 5000);
    await reaper.catch(() => undefined);
    clearTimeout(t);
  }
}

function failedStart(spawnError: string): RunHandle {
  return { pid: undefined, done: Promise.resolve({ exitCode: null, signal: null, timedOut: false, spawnError }), terminate: () => undefined };
}

function fencedStart(why: string): RunHandle {
  return { pid: undefined, done: Promise.resolve({ exitCode: null, signal: null, timedOut: false, lost: why, fenced: true }), terminate: () => undefined };
}

/** A CLOCK_MONOTONIC deadline as wall-clock µs, for the watchdog (bash reads only the wall clock). */
function wallUs(deadline: number): number {
  return Math.floor((Date.now() + deadline - monoMs()) * 1000);
}

export interface SupervisorOptions {
  /** Where job processes' deadlines come from; none: no process is fenced. */
  fence?: FenceView;
  /** SIGTERM this long before a fence deadline (mpirun and srun pass it on to every rank), SIGKILL at it. Default 0. */
  termLeadMs?: number;
}

interface FencedProc {
  /** The spawner's request id. */
  id: number;
  spawner: Spawner;
  pid?: number;
}

/** The last `max` bytes of a file as text; undefined when it cannot be read. */
function readEnd(file: string, max: number, knownSize?: number): string | undefined {
  if (knownSize === 0) return "";
  try {
    // Most short jobs print nothing: one stat instead of open, fstat, close.
    if (knownSize === undefined && statSync(file).size === 0) return "";
    const fd = openSync(file, "r");
    try {
      const size = fstatSync(fd).size;
      const len = Math.min(size, max);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, size - len);
      return buf.toString("utf8");
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
}

const RESULT_RE = /^(?:DH-OUTPUT:\s*(\S+)|BALSAM-RESULT:\s*(.+))\s*$/;

/**
 * The last `DH-OUTPUT: <number>` or `BALSAM-RESULT: <json>` line in the last
 * 64 KiB of the output file; undefined if none. `knownSize`: its size as the
 * spawner saw it when the process ended (0: nothing to read).
 */
export function readResult(outFile: string, knownSize?: number): unknown {
  const text = readEnd(outFile, 64 * 1024, knownSize);
  if (text === undefined) return undefined;
  const lines = text.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = RESULT_RE.exec(lines[i]!.trim());
    if (!m) continue;
    if (m[1] !== undefined) {
      const n = Number(m[1]);
      return Number.isFinite(n) ? n : m[1];
    }
    try {
      return JSON.parse(m[2]!) as unknown;
    } catch {
      return m[2];
    }
  }
  return undefined;
}

/** Where `cmd` is on the launcher's PATH; undefined when it is not there. */
export function findOnPath(cmd: string): string | undefined {
  return findExecutable(cmd, process.env.PATH, "/");
}

/**
 * The last `lines` non-empty lines of a job's output, joined with " | " and
 * at most `maxChars` long: what a RUN_ERROR's history entry shows (0.x put
 * the tail of the output there too).
 */
export function outputTail(outFile: string, knownSize?: number, lines = 5, maxChars = 500): string {
  const text = readEnd(outFile, 8 * 1024, knownSize);
  if (text === undefined) return "";
  const tail = text.split("\n").map((l) => l.trimEnd()).filter(Boolean).slice(-lines).join(" | ");
  return tail.length > maxChars ? "…" + tail.slice(-maxChars) : tail;
}
