import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { parentPort } from "node:worker_threads";

/**
 * A spawning thread of the launcher (see SpawnThreads in runner.ts).
 * `child_process.spawn` blocks its thread until the child has exec'd —
 * 2.6–3 ms here, whatever the launcher's size (measured) — so on the main
 * thread it was most of a short job's cost. Here it blocks only this thread.
 *
 * A child's parent-death signal (setpriv --pdeathsig) fires when the
 * *thread* that forked it exits: these threads live as long as the launcher.
 */

export type SpawnRequest =
  | { t: "base"; env: Record<string, string> }
  | { t: "run"; id: number; argv: string[]; cwd: string; env: Record<string, string>; outFile: string; mkdir: boolean };

export type SpawnReply =
  | { t: "started"; id: number; pid: number }
  | { t: "exit"; id: number; code: number | null; signal: string | null }
  | { t: "failed"; id: number; message: string };

/** Starts one process; what becomes of it is told through `reply`. */
export function startProcess(m: Extract<SpawnRequest, { t: "run" }>, base: Record<string, string>, reply: (m: SpawnReply) => void): void {
  let fd: number;
  try {
    if (m.mkdir) mkdirSync(m.cwd, { recursive: true });
  } catch (err) {
    return reply({ t: "failed", id: m.id, message: `cannot make the working directory: ${(err as Error).message}` });
  }
  try {
    fd = openSync(m.outFile, "a");
  } catch (err) {
    return reply({ t: "failed", id: m.id, message: `cannot open the output file: ${(err as Error).message}` });
  }
  try {
    const child = spawn(m.argv[0]!, m.argv.slice(1), { cwd: m.cwd, env: { ...base, ...m.env }, stdio: ["ignore", fd, fd], detached: true });
    let over = false;
    // Emitted instead of "exit" when the process could not start (ENOENT, EACCES, a bad cwd).
    child.once("error", (err: Error) => {
      if (over) return;
      over = true;
      reply({ t: "failed", id: m.id, message: `${m.argv[0]}: ${err.message}` });
    });
    child.once("exit", (code, signal) => {
      if (over) return;
      over = true;
      reply({ t: "exit", id: m.id, code, signal });
    });
    if (child.pid !== undefined) reply({ t: "started", id: m.id, pid: child.pid });
  } catch (err) {
    reply({ t: "failed", id: m.id, message: (err as Error).message });
  } finally {
    // The child holds its own copy.
    closeSync(fd);
  }
}

let base: Record<string, string> = {};
parentPort?.on("message", (m: SpawnRequest) => {
  if (m.t === "base") base = m.env;
  else startProcess(m, base, (r) => parentPort!.postMessage(r));
});
