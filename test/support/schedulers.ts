import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readSettings, writeSettings, type Settings } from "../../libs/config/index.js";
import type { CliDb, RunResult } from "./cli.js";


export interface StandinReply {
  stdout?: string;
  stderr?: string;
  exitCode?: number;
}

/**
 * A recording stand-in for a batch-scheduler command, for the schedulers that
 * cannot be installed on this machine (Cobalt, PBS, LSF) and for rejections:
 * it writes its argv (NUL-separated) to `<dir>/<name>.argv`, a copy of its
 * last argument to `<dir>/<name>.script` when that is a file, and replies as
 * told. A call counter lets a test see how often the service called it.
 */
export function writeStandin(dir: string, name: string, reply: StandinReply): string {
  mkdirSync(dir, { recursive: true });
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const path = join(dir, name);
  writeFileSync(
    path,
    `#!/bin/bash
# recording stand-in for ${name}
rec=${q(join(dir, name))}
printf '%s\\0' "$@" > "$rec.argv"
echo x >> "$rec.calls"
last="\${@: -1}"
if [ -n "$last" ] && [ -f "$last" ]; then cp "$last" "$rec.script"; fi
printf '%s' ${q(reply.stdout ?? "")}
printf '%s' ${q(reply.stderr ?? "")} >&2
exit ${reply.exitCode ?? 0}
`,
    { mode: 0o755 },
  );
  return path;
}

export interface StandinRecord {
  argv: string[];
  script: string | undefined;
  calls: number;
}

export function readStandin(dir: string, name: string): StandinRecord | undefined {
  const base = join(dir, name);
  if (!existsSync(`${base}.argv`)) return undefined;
  const argv = readFileSync(`${base}.argv`, "utf8").split("\0");
  argv.pop(); // after the last NUL
  return {
    argv,
    script: existsSync(`${base}.script`) ? readFileSync(`${base}.script`, "utf8") : undefined,
    calls: existsSync(`${base}.calls`) ? readFileSync(`${base}.calls`, "utf8").split("\n").filter(Boolean).length : 0,
  };
}

export function updateSettings(dir: string, change: (s: Settings) => Settings): Settings {
  const next = change(readSettings(dir));
  writeSettings(dir, next);
  return next;
}

/** `balsam ls queues [--json]`, as a user runs it. */
export function lsQueues(db: CliDb, json: boolean, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return db.run(["ls", "queues", ...(json ? ["--json"] : [])], { env });
}

export interface LaunchRow {
  id: string;
  scheduler: string;
  scheduler_id: string;
  state: string;
  nodes: number;
  minutes: number;
  mode: string;
  wf_filter: string[];
  script: string;
}

export async function lsQueuesJson(db: CliDb, env: NodeJS.ProcessEnv = {}): Promise<LaunchRow[]> {
  const r = await lsQueues(db, true, env);
  if (r.code !== 0) throw new Error(`ls queues failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as LaunchRow[];
}
