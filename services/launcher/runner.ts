import { execa, type Options, type ResultPromise } from "execa";
import { closeSync, openSync, readSync, fstatSync } from "node:fs";

/**
 * Starts job processes. The only module that imports execa. stdout and
 * stderr share one file descriptor so their lines interleave as written.
 */
export interface RunSpec {
  argv: string[];
  /** Run through `bash -c` (apps with an envscript). */
  shellCommand?: string;
  cwd: string;
  env: Record<string, string>;
  outFile: string;
  /** Kill after this long (preprocess/postprocess scripts). */
  timeoutMs?: number;
}

export interface RunHandle {
  pid: number | undefined;
  done: Promise<RunOutcome>;
  /** SIGTERM, then SIGKILL after `graceMs` if it has not exited. */
  terminate(graceMs: number): void;
}

export interface RunOutcome {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Could not start at all (missing executable …). */
  spawnError?: string;
}

export function startProcess(spec: RunSpec): RunHandle {
  const fd = openSync(spec.outFile, "a");
  let child: ResultPromise;
  const opts = {
    cwd: spec.cwd,
    env: spec.env,
    extendEnv: false,
    stdin: "ignore" as const,
    stdout: fd,
    stderr: fd,
    reject: false,
    buffer: false,
    // Runs are killed by the launcher's own logic; execa's cleanup also kills them if the launcher exits.
    cleanup: true,
    ...(spec.timeoutMs ? { timeout: spec.timeoutMs } : {}),
    // execa's types reject a bare fd number for stdout/stderr although its runtime accepts one.
  } as unknown as Options;
  if (spec.shellCommand) child = execa("bash", ["-c", spec.shellCommand], opts);
  else child = execa(spec.argv[0]!, spec.argv.slice(1), opts);
  let exited = false;
  const done = child.then(
    (r) => {
      exited = true;
      closeSync(fd);
      const failedToSpawn = r.failed && r.exitCode === undefined && !r.signal && !r.timedOut;
      return {
        exitCode: r.exitCode ?? null,
        signal: r.signal ?? null,
        timedOut: Boolean(r.timedOut),
        ...(failedToSpawn ? { spawnError: r.originalMessage || r.shortMessage } : {}),
      };
    },
    (err: unknown) => {
      exited = true;
      closeSync(fd);
      return { exitCode: null, signal: null, timedOut: false, spawnError: String((err as Error).message ?? err) };
    },
  );
  return {
    pid: child.pid,
    done,
    terminate(graceMs: number) {
      if (exited) return;
      child.kill("SIGTERM");
      const t = setTimeout(() => {
        if (!exited) child.kill("SIGKILL");
      }, graceMs);
      t.unref();
    },
  };
}

const RESULT_RE = /^(?:DH-OUTPUT:\s*(\S+)|BALSAM-RESULT:\s*(.+))\s*$/;

/**
 * The last `DH-OUTPUT: <number>` or `BALSAM-RESULT: <json>` line in the last
 * 64 KiB of the output file; undefined if none.
 */
export function readResult(outFile: string): unknown {
  let text: string;
  try {
    const fd = openSync(outFile, "r");
    try {
      const size = fstatSync(fd).size;
      const len = Math.min(size, 64 * 1024);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, size - len);
      text = buf.toString("utf8");
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
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
