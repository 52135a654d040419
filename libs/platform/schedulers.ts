/**
 * Batch-scheduler adapters: the default launch-script template of each
 * scheduler, the command line that submits a script, and the parsers for
 * what the scheduler prints back. Pure: running the commands and writing the
 * files is the service's business (services/service/launches.ts).
 */
import { parse as shellParse, quote as shellQuote } from "shell-quote";
import { ConfigError, UsageError } from "../errors/index.js";

export const SCHEDULER_NAMES = ["slurm", "cobalt", "pbs", "lsf", "local"] as const;
export type SchedulerName = (typeof SCHEDULER_NAMES)[number];

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

/** The placeholders a template may use; the values are substituted shell-quoted. */
export const TEMPLATE_PLACEHOLDERS = [
  "launch_id",
  "scheduler",
  "nodes",
  "queue",
  "project",
  "minutes",
  "launcher_minutes",
  "job_mode",
  "wf_filter",
  "db_path",
  "launch_dir",
  "node",
  "balsam",
  "launcher",
] as const;
export type TemplatePlaceholder = (typeof TEMPLATE_PLACEHOLDERS)[number];

export interface LaunchScriptSpec {
  launchId: string;
  scheduler: SchedulerName;
  nodes: number;
  queue: string;
  project: string;
  wallTimeMinutes: number;
  jobMode: "serial" | "mpi";
  /** Workflows to run; empty: every workflow. */
  workflows: readonly string[];
  /** The launcher's `--tag`s: it runs only jobs carrying them. */
  tags?: Readonly<Record<string, string>>;
  dbPath: string;
  launchDir: string;
  /** Absolute path of the node binary, so the batch job does not depend on its PATH. */
  nodeBin: string;
  /** Absolute path of bin/balsam.js. */
  balsamBin: string;
}

/**
 * The launcher's own time limit: a margin of 10% (at least a minute) before
 * the allocation ends, so it can record its jobs as timed out and exit before
 * the scheduler kills it. A one-minute allocation keeps half a minute.
 */
export function launcherMinutes(wallTimeMinutes: number): number {
  const margin = Math.max(1, Math.ceil(wallTimeMinutes * 0.1));
  const left = wallTimeMinutes - margin;
  return left >= 1 ? left : wallTimeMinutes / 2;
}

/** The values of every placeholder for one launch, shell-quoted where they are words. */
export function templateValues(s: LaunchScriptSpec): Record<TemplatePlaceholder, string> {
  const minutes = launcherMinutes(s.wallTimeMinutes);
  const filter = s.workflows.length ? ["--wf-filter", s.workflows.join(",")] : ["--consume-all"];
  const tags = Object.entries(s.tags ?? {}).flatMap(([k, v]) => ["--tag", `${k}=${v}`]);
  const launcher = [s.nodeBin, s.balsamBin, "launcher", ...filter, "--job-mode", s.jobMode, "--time-limit-minutes", String(minutes), ...tags];
  return {
    launch_id: shellQuote([s.launchId]),
    scheduler: s.scheduler,
    nodes: String(s.nodes),
    queue: shellQuote([s.queue]),
    project: shellQuote([s.project]),
    minutes: String(s.wallTimeMinutes),
    launcher_minutes: String(minutes),
    job_mode: s.jobMode,
    wf_filter: shellQuote(filter),
    db_path: shellQuote([s.dbPath]),
    launch_dir: shellQuote([s.launchDir]),
    node: shellQuote([s.nodeBin]),
    balsam: shellQuote([s.balsamBin]),
    launcher: shellQuote(launcher),
  };
}

/**
 * Fills `{{name}}` placeholders. A placeholder this version does not know is
 * an error rather than left in the script, where bash would run it as a
 * command in the middle of somebody's allocation.
 */
export function renderTemplate(template: string, values: Readonly<Record<string, string>>, source = "the template"): string {
  const unknown = new Set<string>();
  const out = template.replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (whole, name: string) => {
    const v = values[name];
    if (v === undefined) {
      unknown.add(name);
      return whole;
    }
    // Quoting protects a value within a line, not across lines: a newline in
    // `#SBATCH -q {{queue}}` would start a line that bash runs.
    if (/[\x00-\x1f\x7f]/.test(v)) {
      throw new UsageError(`the value for {{${name}}} contains a control character (${JSON.stringify(v)}); it cannot go into a batch script`);
    }
    return v;
  });
  if (unknown.size) {
    throw new ConfigError(`${source} uses unknown placeholder(s): ${[...unknown].map((n) => `{{${n}}}`).join(", ")}`, {
      hint: `known placeholders: ${TEMPLATE_PLACEHOLDERS.map((n) => `{{${n}}}`).join(" ")}`,
    });
  }
  return out;
}

/** Splits `--sched-flags "..."` into words; shell operators are refused, `$VARS` kept as written. */
export function splitSchedFlags(s: string): string[] {
  if (!s.trim()) return [];
  return shellParse(s, (name: string) => `$${name}`).map((p) => {
    if (typeof p === "string") return p;
    if ("pattern" in p) return p.pattern;
    throw new UsageError(`--sched-flags '${s}' contains shell syntax (${JSON.stringify(p)})`, { hint: "give plain flags, e.g. --sched-flags \"--constraint knl --exclusive\"" });
  });
}

// Shared body of the templates: everything but how the launchers are started.
const HEADER = `#!/bin/bash
# Balsam launcher batch job {{launch_id}}: {{nodes}} node(s), {{minutes}} min,
# {{job_mode}} mode, launchers stop after {{launcher_minutes}} min.
export BALSAM_DB_PATH={{db_path}}
cd {{launch_dir}} || exit 1
`;

const TRAILER = `status=$?
echo "$status" > {{launch_dir}}/exit-code
exit "$status"
`;

function template(name: string, serial: string, mpi: string): string {
  return `${HEADER}
if [ "{{job_mode}}" = serial ]; then
  # ${name}: one launcher per node, each running serial jobs on its own node.
  ${serial}
else
  # One launcher on the head node; it starts each MPI job across the allocation.
  ${mpi}
fi
${TRAILER}`;
}

const SLURM_TEMPLATE = template(
  "Slurm",
  // Each launcher task gets the node's CPUs: a site confining steps with
  // cgroups would otherwise squeeze every packed job onto one core.
  `srun --ntasks-per-node=1 -N {{nodes}} -n {{nodes}} --cpus-per-task="\${SLURM_CPUS_ON_NODE:-1}" {{launcher}}`,
  "{{launcher}}",
);

const COBALT_TEMPLATE = template(
  "Cobalt (aprun)",
  // -cc none: the launcher and its jobs are not pinned to the first core.
  "aprun -n {{nodes}} -N 1 -cc none {{launcher}}",
  "{{launcher}}",
);

const PBS_TEMPLATE = template(
  "PBS (mpiexec of MPICH/Cray PALS; Open MPI wants --map-by ppr:1:node)",
  "mpiexec -n {{nodes}} -ppn 1 {{launcher}}",
  "{{launcher}}",
);

const LSF_TEMPLATE = template(
  "LSF (jsrun where there is one, else mpirun)",
  `if command -v jsrun >/dev/null 2>&1; then
    jsrun -n {{nodes}} -r 1 -a 1 -c ALL_CPUS {{launcher}}
  else
    mpirun -ppn 1 -n {{nodes}} {{launcher}}
  fi`,
  "{{launcher}}",
);

const LOCAL_TEMPLATE = `${HEADER}
# This machine is the whole allocation: one launcher, in either mode.
{{launcher}}
${TRAILER}`;

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
