import { spawn, type ChildProcessByStdio } from "node:child_process";
import { accessSync, closeSync, constants as fsConstants, mkdirSync, openSync, readFileSync, statSync, unlinkSync } from "node:fs";
import { constants as osConstants, tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import type { Readable, Writable } from "node:stream";
import { childrenCpuMsOf, cpuMsOf } from "../../libs/platform/proc.js";

/**
 * How a launcher starts job processes. Two ways, the same replies:
 * - `HelperSpawner`: native/balsam-spawn.c, a small process that starts
 *   jobs as vfork() does (clone with CLONE_VM|CLONE_VFORK).
 *   The launcher only writes a request and reads a line: measured here, 0.07
 *   ms of launcher CPU a job against 0.4–1.2 ms for `child_process.spawn`,
 *   whose fork() copies the launcher's page tables (the more heap, the
 *   slower) and blocks the event loop until the child has exec'd.
 * - `startProcess`: `child_process.spawn` in the launcher, when the helper is
 *   not built (no C compiler at `npm run build`) or BALSAM_SPAWN_HELPER=0.
 */
export interface StartRequest {
  /** argv[0] is a path: resolved on the job's PATH by the caller. */
  argv: string[];
  cwd: string;
  /** Added to (or replacing) the launcher's environment. */
  env: Record<string, string>;
  outFile: string;
  mkdir: boolean;
  /** Fence deadline, CLOCK_MONOTONIC ms (see fence.ts); the helper kills the job's session there. */
  deadline?: number;
}

export type SpawnReply =
  /** `listed`: the spawner lists it in a job table the watchdog reads (JobTables), so the watchdog need not be told of it. */
  | { t: "started"; pid: number; listed?: boolean }
  /** `outputBytes`: the output file's size when the process was reaped, where the spawner tells it. */
  | { t: "exit"; code: number | null; signal: string | null; outputBytes?: number }
  | { t: "failed"; message: string }
  /** Its fence deadline passed: its processes are being killed (an "exit" follows). */
  | { t: "fenced" }
  /** The process was lost with the helper that started it (SIGKILLed by its parent-death signal). */
  | { t: "lost"; message: string };

export interface Spawner {
  readonly how: string;
  /** Starts a process; returns its request id (for `moveDeadlines`), 0 when the spawner keeps no deadlines. */
  run(req: StartRequest, reply: (m: SpawnReply) => void): number;
  /** Whether it kills its processes at their fence deadlines itself (the helper); if not, the watchdog does. */
  readonly keepsDeadlines: boolean;
  /** Whether it kills a process's group when the process exits (the helper); if not, the launcher does. */
  readonly endsGroups: boolean;
  /** Sets the fence deadline (CLOCK_MONOTONIC ms) of the processes started as `ids`. */
  moveDeadlines(ids: readonly number[], deadline: number): void;
  /** CPU the spawner used outside the launcher's own process, in ms. */
  cpuMs(): number;
  /** CPU of the job processes it started that have ended, in ms; 0 where it cannot tell. */
  jobsCpuMs(): number;
  close(): Promise<void>;
}

/** Starts one process from the launcher itself; what becomes of it is told through `reply`. */
export function startProcess(m: StartRequest, base: Record<string, string>, reply: (m: SpawnReply) => void): void {
  let fd: number;
  try {
    if (m.mkdir) mkdirSync(m.cwd, { recursive: true });
  } catch (err) {
    return reply({ t: "failed", message: `cannot make the working directory: ${(err as Error).message}` });
  }
  try {
    fd = openSync(m.outFile, "a");
  } catch (err) {
    return reply({ t: "failed", message: `cannot open the output file: ${(err as Error).message}` });
  }
  try {
    const child = spawn(m.argv[0]!, m.argv.slice(1), { cwd: m.cwd, env: { ...base, ...m.env }, stdio: ["ignore", fd, fd], detached: true });
    let over = false;
    // Emitted instead of "exit" when the process could not start (ENOENT, EACCES, a bad cwd).
    child.once("error", (err: Error) => {
      if (over) return;
      over = true;
      reply({ t: "failed", message: `${m.argv[0]}: ${err.message}` });
    });
    child.once("exit", (code, signal) => {
      if (over) return;
      over = true;
      reply({ t: "exit", code, signal });
    });
    if (child.pid !== undefined) reply({ t: "started", pid: child.pid });
  } catch (err) {
    reply({ t: "failed", message: (err as Error).message });
  } finally {
    // The child holds its own copy.
    closeSync(fd);
  }
}

export class InProcessSpawner implements Spawner {
  readonly how: string;
  constructor(
    private readonly base: Record<string, string>,
    /** `setpriv --pdeathsig SIGKILL --` when util-linux has it: the job dies with the launcher. */
    private readonly prefix: readonly string[],
  ) {
    this.how = `child_process.spawn${prefix.length ? " under setpriv --pdeathsig SIGKILL" : ""}`;
  }
  run(req: StartRequest, reply: (m: SpawnReply) => void): number {
    startProcess({ ...req, argv: [...this.prefix, ...req.argv] }, this.base, reply);
    return 0;
  }
  /** The watchdog keeps these processes' deadlines (runner.ts). */
  readonly keepsDeadlines = false;
  readonly endsGroups = false;
  moveDeadlines(): void {}
  cpuMs(): number {
    return 0;
  }
  jobsCpuMs(): number {
    return 0;
  }
  async close(): Promise<void> {}
}

/** Whether a job table still lists a pid (an unreadable one counts: the watchdog is told and removes it). */
function listsAny(path: string): boolean {
  try {
    return /\d/.test(readFileSync(path, "latin1"));
  } catch {
    return true;
  }
}

function unlink(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Gone already (the watchdog removes the tables it knows when it stops).
  }
}

/** CLOCK_MONOTONIC in ms, the clock of fence deadlines: the helper reads the same one (clock_gettime). */
export function monoMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

const SIGNAL_NAMES = new Map(Object.entries(osConstants.signals).map(([name, n]) => [n, name]));

/** The built helper (`npm run build` compiles it when a C compiler is there); undefined when absent or turned off. */
export function helperPath(): string | undefined {
  const want = process.env.BALSAM_SPAWN_HELPER;
  if (want === "0" || want === "off") return undefined;
  const path = want || fileURLToPath(new URL("../../native/balsam-spawn", import.meta.url));
  try {
    accessSync(path, fsConstants.X_OK);
    return path;
  } catch {
    return undefined;
  }
}

/**
 * Where a helper lists its live jobs for the watchdog (native/balsam-spawn.c,
 * "The job table"), so that the launcher does not tell the watchdog of each
 * job: each line told cost a pipe write here and a wakeup and byte-wise reads
 * in the watchdog's bash (its 0.12–0.14 ms of CPU a no-op job, measured, and
 * the launcher's writes).
 */
export interface JobTables {
  /** A node-local directory for the tables (jobTableDir). */
  dir: string;
  /**
   * Told, before any of its jobs starts, `t PATH` for a helper's new table,
   * and `T PATH` when that helper died (its jobs' leftovers are swept then).
   * Sent at once, not with a turn's other lines.
   */
  tell(line: string): void;
}

/** /dev/shm when it is a writable directory (memory: a table write is no disk I/O), else the temp dir; undefined for a path the watchdog's line protocol cannot carry. */
export function jobTableDir(): string | undefined {
  let dir = tmpdir();
  try {
    accessSync("/dev/shm", fsConstants.W_OK);
    if (statSync("/dev/shm").isDirectory()) dir = "/dev/shm";
  } catch {
    // No /dev/shm: the temp dir.
  }
  return /\s/.test(dir) ? undefined : dir;
}

let tableSeq = 0;

/**
 * Jobs started by balsam-spawn (see the header of native/balsam-spawn.c for
 * its protocol). If the helper dies, its jobs' processes die with it (their
 * parent-death signal): each is told "lost", and the next job starts a new
 * helper.
 */
export class HelperSpawner implements Spawner {
  readonly how: string;
  private child: ChildProcessByStdio<Writable, Readable, null> | undefined;
  private readonly pending = new Map<number, (m: SpawnReply) => void>();
  private seq = 0;
  private rest = "";
  private outbox = "";
  private closing = false;
  private spentMs = 0;
  private jobsSpentMs = 0;
  /** Times the helper died while the launcher ran. */
  deaths = 0;
  /** The running helper's job table, when it has one. */
  private table: string | undefined;

  constructor(
    private readonly path: string,
    private readonly log: (line: string) => void,
    /** SIGTERM this long before a fence deadline, SIGKILL at it. */
    private readonly termLeadMs = 0,
    /** Without it (or when a table cannot be made) the watchdog is told of each job. */
    private readonly tables?: JobTables,
  ) {
    this.how = `${path} (vfork)`;
    this.child = this.startHelper();
  }

  private startHelper(): ChildProcessByStdio<Writable, Readable, null> {
    const table = this.newTable();
    this.table = table?.path;
    let child: ChildProcessByStdio<Writable, Readable, null>;
    try {
      child = table
        ? (spawn(this.path, [String(process.pid), String(this.termLeadMs), "3"], { stdio: ["pipe", "pipe", "inherit", table.fd] }) as unknown as ChildProcessByStdio<Writable, Readable, null>)
        : spawn(this.path, [String(process.pid), String(this.termLeadMs)], { stdio: ["pipe", "pipe", "inherit"] });
    } finally {
      // The helper holds its own copy.
      if (table) closeSync(table.fd);
    }
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => this.onData(d));
    // EPIPE after the helper died: told through "exit".
    child.stdin.on("error", () => undefined);
    child.once("error", (err: Error) => this.onExit(child, `cannot run ${this.path}: ${err.message}`));
    // "close", not "exit": the replies it wrote before it died are read first.
    child.once("close", (code, signal) => this.onExit(child, `${this.path} exited (${signal ?? `code ${code}`})`));
    return child;
  }

  private onData(d: string): void {
    const lines = (this.rest + d).split("\n");
    this.rest = lines.pop()!;
    for (const line of lines) {
      // "s ID PID", "x ID CODE SIGNAL SIZE", "f ID MESSAGE", "k ID"
      const a = line.indexOf(" ");
      const b = line.indexOf(" ", a + 1);
      const id = Number(line.slice(a + 1, b < 0 ? undefined : b));
      const cb = this.pending.get(id);
      if (!cb) continue;
      if (line[0] === "k") {
        cb({ t: "fenced" });
        continue;
      }
      const rest = line.slice(b + 1);
      if (line[0] === "s") {
        cb(this.table ? { t: "started", pid: Number(rest), listed: true } : { t: "started", pid: Number(rest) });
        continue;
      }
      this.pending.delete(id);
      if (line[0] === "f") cb({ t: "failed", message: rest });
      else {
        const [code, sig, size] = rest.split(" ").map(Number) as [number, number, number | undefined];
        const end: SpawnReply = code < 0 ? { t: "exit", code: null, signal: SIGNAL_NAMES.get(sig) ?? `signal ${sig}` } : { t: "exit", code, signal: null };
        // A size it could not read (-1) leaves the file to be read by the launcher.
        if (size !== undefined && size >= 0) end.outputBytes = size;
        cb(end);
      }
    }
  }

  /** A fresh table, its path told to the watchdog before the helper that writes it starts; undefined when none can be made. */
  private newTable(): { path: string; fd: number } | undefined {
    if (!this.tables) return undefined;
    const path = `${this.tables.dir}/balsam-jobs-${process.pid}-${++tableSeq}`;
    try {
      const fd = openSync(path, "wx", 0o600);
      this.tables.tell(`t ${path}\n`);
      return { path, fd };
    } catch {
      return undefined;
    }
  }

  private onExit(child: ChildProcessByStdio<Writable, Readable, null>, why: string): void {
    if (this.child !== child) return;
    this.child = undefined;
    this.outbox = "";
    const table = this.table;
    this.table = undefined;
    // A helper that reaped its jobs while running blanked their lines; one that died, or ended jobs once its stdin
    // closed (it then keeps their lines), lists what the watchdog must sweep in their sessions now.
    if (table && this.closing && !listsAny(table)) unlink(table);
    else if (table) this.tables!.tell(`T ${table}\n`);
    if (this.closing) return;
    this.deaths++;
    const lost = [...this.pending.values()];
    this.pending.clear();
    this.log(`${why}: ${lost.length} job process(es) lost with it; the next job starts a new one`);
    for (const cb of lost) cb({ t: "lost", message: `its process was lost: ${why}` });
  }

  run(req: StartRequest, reply: (m: SpawnReply) => void): number {
    if (this.closing) {
      reply({ t: "failed", message: "the launcher is stopping" });
      return 0;
    }
    this.child ??= this.startHelper();
    const id = ++this.seq;
    const env = Object.entries(req.env).map(([k, v]) => `${k}=${v}`);
    const flags = `${req.mkdir ? "m" : "-"}${req.deadline === undefined ? "" : `d${Math.floor(req.deadline)}`}`;
    const fields = [String(id), req.cwd, req.outFile, flags, String(req.argv.length), ...req.argv, String(env.length), ...env];
    // execve takes C strings: a NUL inside one would cut it (and here, the request).
    if (fields.some((f) => f.includes("\0"))) {
      reply({ t: "failed", message: "an argument or environment value contains a NUL byte" });
      return 0;
    }
    this.pending.set(id, reply);
    this.send(fields);
    return id;
  }

  readonly keepsDeadlines = true;
  readonly endsGroups = true;
  moveDeadlines(ids: readonly number[], deadline: number): void {
    const live = ids.filter((id) => this.pending.has(id));
    if (live.length && this.child) this.send(["D", String(Math.floor(deadline)), ...live.map(String)]);
  }

  /**
   * Requests go out in one write (a system call each) once the work at hand
   * has run its course (process.nextTick: after the promise chains that the
   * helper's reply set going, so the jobs it freed start together). They
   * belong to the helper they were made for: if it dies first, its
   * requests' jobs were told "lost" and nothing of them goes to the next one.
   * Not setImmediate: that waited for the rest of the loop's I/O callbacks
   * (a bulk write's serializing, say), and a freed slot stood empty the while
   * (measured, 15,000 no-op jobs twice: from the helper's exit line to the
   * next request p90 0.87/0.69 → 0.48/0.47 ms, p99 2.4 → 1.3 ms, and
   * slightly fewer writes).
   */
  private send(fields: string[]): void {
    const body = fields.join("\0") + "\0";
    if (this.outbox === "") {
      const child = this.child!;
      process.nextTick(() => this.flush(child));
    }
    this.outbox += `${Buffer.byteLength(body)}\n${body}`;
  }

  private flush(child: ChildProcessByStdio<Writable, Readable, null>): void {
    if (this.child !== child || this.outbox === "") return;
    child.stdin.write(this.outbox);
    this.outbox = "";
  }

  cpuMs(): number {
    return this.spentMs + cpuMsOf(this.child?.pid);
  }

  /** What the helper's reaped jobs used (its cutime and cstime): the bench's "the jobs themselves". */
  jobsCpuMs(): number {
    return this.jobsSpentMs + childrenCpuMsOf(this.child?.pid);
  }

  /** Ends the helper; it kills the process groups of jobs still running. */
  async close(): Promise<void> {
    this.closing = true;
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((res) => child.once("close", () => res()));
    this.spentMs += cpuMsOf(child.pid);
    this.jobsSpentMs += childrenCpuMsOf(child.pid);
    this.flush(child);
    child.stdin.end();
    const t = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  }
}
