import { spawn, type ChildProcess } from "node:child_process";
import { BALSAM_BIN } from "./cli.js";

/** A `balsam launcher` subprocess, as a batch script would start one. */
export interface LauncherProc {
  child: ChildProcess;
  output(): string;
  exited: Promise<number>;
}

/**
 * `wrap`: a command the launcher runs under, e.g. `ip netns exec NS` (a stand-in compute node).
 * `bin`: another build's `bin/balsam.js` (the bench's before and after in one run).
 */
export function startLauncher(args: string[], env: NodeJS.ProcessEnv, wrap: string[] = [], bin = BALSAM_BIN): LauncherProc {
  const argv = [process.execPath, bin, "launcher", ...args];
  const child = spawn(wrap[0] ?? argv[0]!, [...wrap.slice(1), ...(wrap.length ? argv : argv.slice(1))], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number>((r) => child.on("close", (code, sig) => r(code ?? (sig === "SIGKILL" ? 137 : 1))));
  return { child, output: () => out, exited };
}

/**
 * The launcher's exit code, or "still running after …" when it has not
 * exited within `ms` (then it is killed): a launcher that hangs must fail
 * its test, not hang the run.
 */
export async function exitedWithin(l: LauncherProc, ms: number): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([l.exited, new Promise<string>((r) => (timer = setTimeout(() => r(`still running after ${ms} ms`), ms)))]);
  clearTimeout(timer);
  if (typeof code === "string") l.child.kill("SIGKILL");
  return code;
}
