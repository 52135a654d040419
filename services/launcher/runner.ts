import { HelperSpawner, InProcessSpawner, helperPath, type Spawner } from "./spawner.js";
import { execa, execaSync, type ResultPromise } from "execa";
import { accessSync, closeSync, constants, openSync, readSync, fstatSync, statSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";
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
  /** Killed with the helper that started it: not the job's doing, so it runs again. */
  lost?: string;
}

/**
 * The watchdog: told `+ PGID` / `- PGID` on its stdin as jobs start and end,
 * and `! PGID` to sweep a job now. Its stdin reaches EOF when the launcher
 * dies however it dies (kill -9 included), and then it sweeps every job still
 * registered. A sweep SIGKILLs the job's process group, then — for up to
 * three rounds, catching processes forked meanwhile — every process whose
 * session is the job's: mpirun (Open MPI 4.1 measured here) gives each local
 * rank its own process group in the job's session. Signals a terminal or a
 * group kill would send are ignored so it outlives the launcher.
 */
const WATCHDOG = `
trap '' INT TERM HUP PIPE
sweep() {
  local -A ids=()
  local id f line found round
  for id; do ids[$id]=1; kill -KILL -- "-$id" 2>/dev/null; done
  for round in 1 2 3; do
    found=0
    for f in /proc/[0-9]*/stat; do
      { read -r line < "$f"; } 2>/dev/null || continue
      set -- \${line##*) }
      [[ $1 == Z ]] && continue
      if [[ \${ids[$4]} || \${ids[$3]} ]]; then kill -KILL "\${f//[^0-9]/}" 2>/dev/null && found=1; fi
    done
    (( found )) || break
  done
}
declare -A groups=()
while read -r op id; do
  case $op in
    +) groups[$id]=1 ;;
    -) unset "groups[$id]" ;;
    !) sweep "$id" ;;
  esac
done
(( \${#groups[@]} )) && sweep "\${!groups[@]}"
exit 0
`;

/** `cmd` as the OS would find it for a child with this PATH and cwd; undefined when there is no such executable file. */
function findExecutable(cmd: string, path: string | undefined, cwd: string): string | undefined {
  const candidates = cmd.includes("/") ? [resolve(cwd, cmd)] : (path ?? "").split(delimiter).filter(Boolean).map((d) => join(d, cmd));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      if (statSync(c).isFile()) return c;
    } catch {
      // not this one
    }
  }
  return undefined;
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
  private readonly foundCache = new Map<string, string>();
  private readonly baseEnv: Record<string, string>;
  private spawner: Spawner;

  private constructor(
    private readonly deathSignalPrefix: readonly string[],
    private readonly reaper: ResultPromise | undefined,
    private readonly log: (line: string) => void,
  ) {
    this.baseEnv = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined));
    const helper = helperPath();
    this.spawner = helper ? new HelperSpawner(helper, log) : new InProcessSpawner(this.baseEnv, deathSignalPrefix);
  }

  static start(log: (line: string) => void): ProcessSupervisor {
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
    const s = new ProcessSupervisor(prefix, reaper, log);
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

  private tell(line: string): void {
    const stdin = this.reaper?.stdin as Writable | null | undefined;
    if (!stdin || this.reaperBroken || stdin.destroyed) return;
    stdin.write(line);
  }

  run(spec: RunSpec): RunHandle {
    if (this.state !== "running") throw new Error("the process supervisor is closed");
    const command = spec.shellCommand ? ["bash", "-c", spec.shellCommand] : [...spec.argv];
    // Resolved here, on the job's PATH, as a shell would: the helper and setpriv exec a path.
    const path = this.found(command[0]!, spec.env.PATH ?? this.baseEnv.PATH, spec.cwd);
    if (path === undefined) return failedStart(`${command[0]}: command not found`);
    command[0] = path;
    let pid: number | undefined;
    let exited = false;
    let terminated = false;
    let timedOut = false;
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
    this.spawnerFor().run(
      { argv: command, cwd: spec.cwd, env: spec.env, outFile: spec.outFile, mkdir: Boolean(spec.mkdir) },
      (m) => {
        if (m.t === "started") {
          pid = m.pid;
          this.tell(`+ ${pid}\n`);
          if (grace !== undefined) kill(grace);
          return;
        }
        exited = true;
        if (timer) clearTimeout(timer);
        if (pid !== undefined) {
          signalGroup(pid, "SIGKILL");
          // Rare (kills, time limits) and worth a /proc scan: what the job left outside its group, e.g. an mpirun's ranks after the mpirun was SIGKILLed.
          if (terminated) this.tell(`! ${pid}\n`);
          this.tell(`- ${pid}\n`);
        }
        if (m.t === "failed") settle({ exitCode: null, signal: null, timedOut: false, spawnError: m.message });
        else if (m.t === "lost") settle({ exitCode: null, signal: "SIGKILL", timedOut, lost: m.message });
        else settle({ exitCode: m.code, signal: m.signal, timedOut });
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

  /** findExecutable, remembered per PATH for bare names: every job of an app names the same one. */
  private found(cmd: string, path: string | undefined, cwd: string): string | undefined {
    if (cmd.includes("/")) return findExecutable(cmd, path, cwd);
    const key = `${path ?? ""}\0${cmd}`;
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
    (reaper.stdin as Writable | null)?.end();
    const t = setTimeout(() => reaper.kill("SIGKILL"), 5000);
    await reaper.catch(() => undefined);
    clearTimeout(t);
  }
}

function failedStart(spawnError: string): RunHandle {
  return { pid: undefined, done: Promise.resolve({ exitCode: null, signal: null, timedOut: false, spawnError }), terminate: () => undefined };
}

/** The last `max` bytes of a file as text; undefined when it cannot be read. */
function readEnd(file: string, max: number): string | undefined {
  try {
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
 * 64 KiB of the output file; undefined if none.
 */
export function readResult(outFile: string): unknown {
  const text = readEnd(outFile, 64 * 1024);
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
export function outputTail(outFile: string, lines = 5, maxChars = 500): string {
  const text = readEnd(outFile, 8 * 1024);
  if (text === undefined) return "";
  const tail = text.split("\n").map((l) => l.trimEnd()).filter(Boolean).slice(-lines).join(" | ");
  return tail.length > maxChars ? "…" + tail.slice(-maxChars) : tail;
}
