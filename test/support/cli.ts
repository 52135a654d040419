import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The built CLI, run as a user runs it: `node bin/balsam.js ...` in a subprocess. */
export const BALSAM_BIN = resolve(fileURLToPath(import.meta.url), "../../../../bin/balsam.js");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
  /** Working directory of the command; default this process's. */
  cwd?: string;
}

export function runBalsam(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [BALSAM_BIN, ...args], {
      env: { ...process.env, BALSAM_DEBUG: "", ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
      cwd: opts.cwd,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    child.on("error", rej);
    child.on("close", (code, sig) => {
      clearTimeout(timer);
      res({ code: code ?? (sig ? 128 : 1), stdout, stderr });
    });
    // A command that exits before it reads its input (most do) has closed the pipe: EPIPE is not the test's failure.
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}

/**
 * A database directory on the test servers (`balsam init --mongo-url
 * --redis-url`) with its own database name and queue prefix, and a private
 * BALSAM_HOME so tests never touch ~/.balsam.
 */
export interface CliDb {
  dir: string;
  env: NodeJS.ProcessEnv;
  run(args: string[], opts?: RunOptions): Promise<RunResult>;
  cleanup(): void;
}

export async function makeCliDb(mongoUrl: string, redisUrl: string, dbName: string, prefix: string): Promise<CliDb> {
  const root = mkdtempSync(join(tmpdir(), "balsam-cli-"));
  const dir = join(root, "db");
  const home = join(root, "home");
  const baseEnv = { BALSAM_HOME: home };
  const r = await runBalsam(["init", dir, "--mongo-url", mongoUrl, "--redis-url", redisUrl, "--db-name", dbName, "--queue-prefix", prefix], { env: baseEnv });
  if (r.code !== 0) throw new Error(`balsam init failed: ${r.stderr}`);
  const env = { ...baseEnv, BALSAM_DB_PATH: dir };
  return {
    dir,
    env,
    run: (args, opts = {}) => runBalsam(args, { ...opts, env: { ...env, ...opts.env } }),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}
