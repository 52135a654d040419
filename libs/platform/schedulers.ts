/**
 * Batch-scheduler adapters: the default launch-script template of each
 * scheduler, the command line that submits a script, and the parsers for
 * what the scheduler prints back. Pure: running the commands and writing the
 * files is the service's business (services/service/launches.ts).
 */
import { ConfigError } from "../errors/index.js";
import { COBALT_TEMPLATE, LOCAL_TEMPLATE, LSF_TEMPLATE, PBS_TEMPLATE, SCHEDULER_NAMES, SLURM_TEMPLATE, type SchedulerName } from "./templates.js";

export * from "./templates.js";

/** A launch's state, the same words whatever the scheduler calls it. */
export const LAUNCH_STATES = ["queued", "running", "finished", "failed", "unknown"] as const;
export type LaunchState = (typeof LAUNCH_STATES)[number];

/** Launches the service still has to watch. */
export const OPEN_LAUNCH_STATES: readonly LaunchState[] = ["queued", "running", "unknown"];

export interface SubmitOptions {
  nodes: number;
  queue: string;
  wallTimeMinutes: number;
  /** Empty: the scheduler's default account. */
  project: string;
  /** Where the batch job's output goes, next to the rendered script. */
  launchDir: string;
  /** Extra submit flags, already split into words. */
  schedFlags: readonly string[];
  jobName?: string;
}

export interface SchedulerAdapter {
  readonly name: SchedulerName;
  /** The program that must be on PATH for submissions to work. */
  readonly submitCommand: string;
  readonly defaultTemplate: string;
  submitArgv(scriptPath: string, opts: SubmitOptions): string[];
  /** The scheduler's id of the submitted job; throws when the output has none. */
  parseSubmitOutput(stdout: string): string;
  statusArgv(ids: readonly string[]): string[];
  /** Jobs the scheduler still lists, id → state. An id it does not list has left its queue. */
  parseStatus(stdout: string): Map<string, LaunchState>;
  /**
   * stderr of a status command that failed only because none of the ids is
   * known any more (all left the queue) — as opposed to a scheduler that is
   * down, after which the recorded states are kept.
   */
  readonly goneOnError: RegExp;
}

function words(s: string): string[] {
  return s.split(/\s+/).filter((w) => w !== "");
}

function firstMatch(stdout: string, re: RegExp, what: string): string {
  const m = re.exec(stdout);
  if (!m?.[1]) throw new ConfigError(`cannot find the job id in ${what}'s output: ${stdout.trim().slice(0, 200) || "(nothing)"}`);
  return m[1];
}

function hhmmss(minutes: number): string {
  const total = Math.round(minutes * 60);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return [h, m, s].map((n) => String(n).padStart(2, "0")).join(":");
}

function withProject(flag: string, project: string): string[] {
  return project ? [flag, project] : [];
}

/** Slurm's job states (squeue %T), as launch states. */
export function slurmState(s: string): LaunchState {
  switch (s.toUpperCase()) {
    case "PENDING":
    case "CONFIGURING":
    case "REQUEUED":
    case "REQUEUE_HOLD":
    case "REQUEUE_FED":
    case "RESV_DEL_HOLD":
      return "queued";
    case "RUNNING":
    case "COMPLETING":
    case "SUSPENDED":
    case "STAGE_OUT":
    case "SIGNALING":
    case "RESIZING":
      return "running";
    case "COMPLETED":
      return "finished";
    case "FAILED":
    case "CANCELLED":
    case "TIMEOUT":
    case "NODE_FAIL":
    case "OUT_OF_MEMORY":
    case "BOOT_FAIL":
    case "DEADLINE":
    case "PREEMPTED":
    case "REVOKED":
    case "SPECIAL_EXIT":
      return "failed";
    default:
      return "unknown";
  }
}

const slurm: SchedulerAdapter = {
  name: "slurm",
  submitCommand: "sbatch",
  defaultTemplate: SLURM_TEMPLATE,
  submitArgv: (script, o) => [
    "sbatch",
    "-N",
    String(o.nodes),
    "-p",
    o.queue,
    "-t",
    String(o.wallTimeMinutes),
    ...withProject("-A", o.project),
    "-J",
    o.jobName ?? "balsam",
    "-o",
    `${o.launchDir}/output.txt`,
    "-D",
    o.launchDir,
    ...o.schedFlags,
    script,
  ],
  // `Submitted batch job 42`, or `42;cluster` with --parsable in the site's flags.
  parseSubmitOutput: (out) => {
    const m = /Submitted batch job\s+(\d+)/.exec(out) ?? /^\s*(\d+)(?:;\S*)?\s*$/m.exec(out);
    if (!m?.[1]) throw new ConfigError(`cannot find the job id in sbatch's output: ${out.trim().slice(0, 200) || "(nothing)"}`);
    return m[1];
  },
  // -t all: finished jobs stay listed (for MinJobAge) with how they ended.
  statusArgv: (ids) => ["squeue", "-h", "-t", "all", "-o", "%i|%T", "-j", ids.join(",")],
  parseStatus: (out) => {
    const m = new Map<string, LaunchState>();
    for (const line of out.split("\n")) {
      const [id, st] = line.trim().split("|");
      if (id && st) m.set(id, slurmState(st));
    }
    return m;
  },
  goneOnError: /Invalid job id/i,
};

/** Cobalt's job states (qstat State), as launch states. */
export function cobaltState(s: string): LaunchState {
  const v = s.toLowerCase();
  if (v === "queued" || v === "starting" || v.endsWith("_hold")) return "queued";
  if (v === "running" || v === "exiting" || v === "killing" || v === "cleanup") return "running";
  if (v === "done" || v === "finished") return "finished";
  return "unknown";
}

const cobalt: SchedulerAdapter = {
  name: "cobalt",
  submitCommand: "qsub",
  defaultTemplate: COBALT_TEMPLATE,
  submitArgv: (script, o) => [
    "qsub",
    "-n",
    String(o.nodes),
    "-t",
    String(o.wallTimeMinutes),
    "-q",
    o.queue,
    ...withProject("-A", o.project),
    "--jobname",
    o.jobName ?? "balsam",
    // Cobalt writes <prefix>.output, .error and .cobaltlog.
    "-O",
    `${o.launchDir}/cobalt`,
    ...o.schedFlags,
    script,
  ],
  // Cobalt prints the bare job id (warnings, if any, go before it).
  parseSubmitOutput: (out) => firstMatch(out, /^\s*(\d+)\s*$/m, "qsub"),
  statusArgv: (ids) => ["qstat", "--header", "JobID:State", ...ids],
  parseStatus: (out) => {
    const m = new Map<string, LaunchState>();
    for (const line of out.split("\n")) {
      const w = words(line);
      if (w.length >= 2 && /^\d+$/.test(w[0]!)) m.set(w[0]!, cobaltState(w[1]!));
    }
    return m;
  },
  goneOnError: /unknown|not found|no such job/i,
};

/** PBS Pro / Torque one-letter states (qstat S column), as launch states. */
export function pbsState(s: string): LaunchState {
  switch (s.toUpperCase()) {
    case "Q":
    case "H":
    case "W":
    case "T":
    case "S":
    case "U":
      return "queued";
    case "R":
    case "E":
    case "B":
    case "X":
      return "running";
    case "F":
    case "C":
      return "finished";
    default:
      return "unknown";
  }
}

const pbs: SchedulerAdapter = {
  name: "pbs",
  submitCommand: "qsub",
  defaultTemplate: PBS_TEMPLATE,
  submitArgv: (script, o) => [
    "qsub",
    // PBS Pro chunks; scatter puts each chunk on its own node.
    "-l",
    `select=${o.nodes}`,
    "-l",
    "place=scatter",
    "-l",
    `walltime=${hhmmss(o.wallTimeMinutes)}`,
    "-q",
    o.queue,
    ...withProject("-A", o.project),
    "-N",
    o.jobName ?? "balsam",
    "-o",
    `${o.launchDir}/output.txt`,
    "-j",
    "oe",
    ...o.schedFlags,
    script,
  ],
  // `1234.pbs-server`; the whole string is the id qstat takes.
  parseSubmitOutput: (out) => firstMatch(out, /^\s*(\d+(?:\.[A-Za-z0-9_.-]+)?)\s*$/m, "qsub"),
  statusArgv: (ids) => ["qstat", ...ids],
  parseStatus: (out) => {
    const m = new Map<string, LaunchState>();
    for (const line of out.split("\n")) {
      const w = words(line);
      // Job id | Name | User | Time Use | S | Queue; long ids are cut with a '*'.
      if (w.length >= 6 && /^\d/.test(w[0]!)) m.set(pbsShortId(w[0]!), pbsState(w[4]!));
    }
    return m;
  },
  goneOnError: /Unknown Job Id|job has finished/i,
};

/** The numeric part of a PBS id: qstat truncates `1234.long-server-name` in its table. */
export function pbsShortId(id: string): string {
  return id.split(".")[0]!.replace(/\*$/, "");
}

/** LSF job states (bjobs STAT), as launch states. */
export function lsfState(s: string): LaunchState {
  switch (s.toUpperCase()) {
    case "PEND":
    case "PSUSP":
    case "WAIT":
      return "queued";
    case "RUN":
    case "USUSP":
    case "SSUSP":
      return "running";
    case "DONE":
      return "finished";
    case "EXIT":
      return "failed";
    default:
      return "unknown";
  }
}

const lsf: SchedulerAdapter = {
  name: "lsf",
  submitCommand: "bsub",
  defaultTemplate: LSF_TEMPLATE,
  submitArgv: (script, o) => [
    "bsub",
    "-nnodes",
    String(o.nodes),
    "-W",
    String(o.wallTimeMinutes),
    "-q",
    o.queue,
    ...withProject("-P", o.project),
    "-J",
    o.jobName ?? "balsam",
    "-o",
    `${o.launchDir}/output.txt`,
    "-cwd",
    o.launchDir,
    ...o.schedFlags,
    script,
  ],
  // `Job <1234> is submitted to queue <batch>.`
  parseSubmitOutput: (out) => firstMatch(out, /Job <(\d+)>/, "bsub"),
  statusArgv: (ids) => ["bjobs", "-noheader", "-a", "-o", "jobid stat", ...ids],
  parseStatus: (out) => {
    const m = new Map<string, LaunchState>();
    for (const line of out.split("\n")) {
      const w = words(line);
      if (w.length >= 2 && /^\d+$/.test(w[0]!)) m.set(w[0]!, lsfState(w[1]!));
    }
    return m;
  },
  goneOnError: /is not found/i,
};

const local: SchedulerAdapter = {
  name: "local",
  submitCommand: "sh",
  defaultTemplate: LOCAL_TEMPLATE,
  // Detached and immune to the caller's hangup; the pid printed is the id.
  submitArgv: (script, o) => ["sh", "-c", 'nohup /bin/bash "$1" >"$2" 2>&1 </dev/null & echo $!', "balsam-local", script, `${o.launchDir}/output.txt`],
  parseSubmitOutput: (out) => firstMatch(out, /^\s*(\d+)\s*$/m, "the local launch"),
  statusArgv: (ids) => ["ps", "-o", "pid=,stat=", "-p", ids.join(",")],
  parseStatus: (out) => {
    const m = new Map<string, LaunchState>();
    for (const line of out.split("\n")) {
      const w = words(line);
      // A zombie has exited; its parent just has not reaped it yet.
      if (w.length >= 2 && /^\d+$/.test(w[0]!)) m.set(w[0]!, w[1]!.startsWith("Z") ? "finished" : "running");
    }
    return m;
  },
  // ps exits 1 with nothing on stderr when none of the pids exists.
  goneOnError: /^\s*$/,
};

const ADAPTERS: Record<SchedulerName, SchedulerAdapter> = { slurm, cobalt, pbs, lsf, local };

export function isSchedulerName(s: string): s is SchedulerName {
  return (SCHEDULER_NAMES as readonly string[]).includes(s);
}

export function schedulerAdapter(name: string): SchedulerAdapter {
  if (!isSchedulerName(name)) {
    throw new ConfigError(`unknown scheduler '${name}'`, { hint: `use one of ${SCHEDULER_NAMES.join(", ")} (settings.json "scheduler", or BALSAM_SCHEDULER)` });
  }
  return ADAPTERS[name];
}

/** Looks an id up in a status map, also by its short form (PBS tables cut long ids). */
export function lookupState(states: ReadonlyMap<string, LaunchState>, id: string): LaunchState | undefined {
  return states.get(id) ?? states.get(pbsShortId(id));
}
