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
  /** Its status command sees only the host it runs on (the local scheduler's `ps`): a launch is asked about on the host that submitted it. */
  readonly hostBound?: boolean;
}

function words(s: string): string[] {
  return s.split(/\s+/).filter((w) => w !== "");
}

/** The first group of the first pattern that matches, tried in order. */
function firstMatch(stdout: string, what: string, ...patterns: RegExp[]): string {
  const m = patterns.map((re) => re.exec(stdout)).find((x) => x !== null);
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

interface SubmitFlags {
  resources: (o: SubmitOptions) => string[];
  /** Given only when the launch names a project. */
  projectFlag: string;
  nameFlag: string;
  output: (o: SubmitOptions) => string[];
}

type BatchAdapterSpec = SubmitFlags & Omit<SchedulerAdapter, "name" | "submitCommand" | "defaultTemplate" | "submitArgv">;

/** A batch scheduler's adapter. It submits `<command> <resources> [<project>] <name> <output> <site's flags> <script>`: the order every one here takes. */
function batchAdapter(name: SchedulerName, submitCommand: string, defaultTemplate: string, spec: BatchAdapterSpec): SchedulerAdapter {
  const { resources, projectFlag, nameFlag, output, ...rest } = spec;
  const submitArgv = (script: string, o: SubmitOptions): string[] => {
    const project = o.project ? [projectFlag, o.project] : [];
    return [submitCommand, ...resources(o), ...project, nameFlag, o.jobName ?? "balsam", ...output(o), ...o.schedFlags, script];
  };
  return { name, submitCommand, defaultTemplate, submitArgv, ...rest };
}

/** Parses a status listing a line at a time; `row` gives [id, state] for a line that lists a job. */
function statusRows(out: string, row: (line: string) => [string, LaunchState] | undefined): Map<string, LaunchState> {
  const m = new Map<string, LaunchState>();
  for (const line of out.split("\n")) {
    const r = row(line);
    if (r) m.set(...r);
  }
  return m;
}

/** A listing whose rows start `<numeric id> <status word>`. */
function idFirstRows(state: (word: string) => LaunchState): SchedulerAdapter["parseStatus"] {
  return (out) =>
    statusRows(out, (line) => {
      const [id, word] = words(line);
      return id !== undefined && word !== undefined && /^\d+$/.test(id) ? [id, state(word)] : undefined;
    });
}

/** A scheduler's state words (any case) → launch states; a word not listed is "unknown". */
function stateTable(table: Partial<Record<LaunchState, readonly string[]>>): (s: string) => LaunchState {
  const byWord = new Map<string, LaunchState>();
  for (const [state, names] of Object.entries(table)) for (const name of names) byWord.set(name, state as LaunchState);
  return (s) => byWord.get(s.toUpperCase()) ?? "unknown";
}

/** Slurm's job states (squeue %T), as launch states. */
export const slurmState = stateTable({
  queued: ["PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"],
  running: ["RUNNING", "COMPLETING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "RESIZING"],
  finished: ["COMPLETED"],
  failed: ["FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED", "REVOKED", "SPECIAL_EXIT"],
});

const slurm = batchAdapter("slurm", "sbatch", SLURM_TEMPLATE, {
  resources: (o) => ["-N", String(o.nodes), "-p", o.queue, "-t", String(o.wallTimeMinutes)],
  projectFlag: "-A",
  nameFlag: "-J",
  output: (o) => ["-o", `${o.launchDir}/output.txt`, "-D", o.launchDir],
  // `Submitted batch job 42`, or `42;cluster` with --parsable in the site's flags.
  parseSubmitOutput: (out) => firstMatch(out, "sbatch", /Submitted batch job\s+(\d+)/, /^\s*(\d+)(?:;\S*)?\s*$/m),
  // -t all: finished jobs stay listed (for MinJobAge) with how they ended.
  statusArgv: (ids) => ["squeue", "-h", "-t", "all", "-o", "%i|%T", "-j", ids.join(",")],
  parseStatus: (out) =>
    statusRows(out, (line) => {
      const [id, st] = line.trim().split("|");
      return id && st ? [id, slurmState(st)] : undefined;
    }),
  goneOnError: /Invalid job id/i,
});

/** Cobalt's job states (qstat State), as launch states. */
export function cobaltState(s: string): LaunchState {
  const v = s.toLowerCase();
  if (v === "queued" || v === "starting" || v.endsWith("_hold")) return "queued";
  if (v === "running" || v === "exiting" || v === "killing" || v === "cleanup") return "running";
  if (v === "done" || v === "finished") return "finished";
  return "unknown";
}

const cobalt = batchAdapter("cobalt", "qsub", COBALT_TEMPLATE, {
  resources: (o) => ["-n", String(o.nodes), "-t", String(o.wallTimeMinutes), "-q", o.queue],
  projectFlag: "-A",
  nameFlag: "--jobname",
  // Cobalt writes <prefix>.output, .error and .cobaltlog.
  output: (o) => ["-O", `${o.launchDir}/cobalt`],
  // Cobalt prints the bare job id (warnings, if any, go before it).
  parseSubmitOutput: (out) => firstMatch(out, "qsub", /^\s*(\d+)\s*$/m),
  statusArgv: (ids) => ["qstat", "--header", "JobID:State", ...ids],
  parseStatus: idFirstRows(cobaltState),
  goneOnError: /unknown|not found|no such job/i,
});

/** PBS Pro / Torque one-letter states (qstat S column), as launch states. */
export const pbsState = stateTable({
  queued: ["Q", "H", "W", "T", "S", "U"],
  running: ["R", "E", "B", "X"],
  finished: ["F", "C"],
});

const pbs = batchAdapter("pbs", "qsub", PBS_TEMPLATE, {
  // PBS Pro chunks; scatter puts each chunk on its own node.
  resources: (o) => ["-l", `select=${o.nodes}`, "-l", "place=scatter", "-l", `walltime=${hhmmss(o.wallTimeMinutes)}`, "-q", o.queue],
  projectFlag: "-A",
  nameFlag: "-N",
  output: (o) => ["-o", `${o.launchDir}/output.txt`, "-j", "oe"],
  // `1234.pbs-server`; the whole string is the id qstat takes.
  parseSubmitOutput: (out) => firstMatch(out, "qsub", /^\s*(\d+(?:\.[A-Za-z0-9_.-]+)?)\s*$/m),
  statusArgv: (ids) => ["qstat", ...ids],
  parseStatus: (out) =>
    statusRows(out, (line) => {
      const w = words(line);
      // Job id | Name | User | Time Use | S | Queue; long ids are cut with a '*'.
      return w.length >= 6 && /^\d/.test(w[0]!) ? [pbsShortId(w[0]!), pbsState(w[4]!)] : undefined;
    }),
  goneOnError: /Unknown Job Id|job has finished/i,
});

/** The numeric part of a PBS id: qstat truncates `1234.long-server-name` in its table. */
export function pbsShortId(id: string): string {
  return id.split(".")[0]!.replace(/\*$/, "");
}

/** LSF job states (bjobs STAT), as launch states. */
export const lsfState = stateTable({ queued: ["PEND", "PSUSP", "WAIT"], running: ["RUN", "USUSP", "SSUSP"], finished: ["DONE"], failed: ["EXIT"] });

const lsf = batchAdapter("lsf", "bsub", LSF_TEMPLATE, {
  resources: (o) => ["-nnodes", String(o.nodes), "-W", String(o.wallTimeMinutes), "-q", o.queue],
  projectFlag: "-P",
  nameFlag: "-J",
  output: (o) => ["-o", `${o.launchDir}/output.txt`, "-cwd", o.launchDir],
  // `Job <1234> is submitted to queue <batch>.`
  parseSubmitOutput: (out) => firstMatch(out, "bsub", /Job <(\d+)>/),
  statusArgv: (ids) => ["bjobs", "-noheader", "-a", "-o", "jobid stat", ...ids],
  parseStatus: idFirstRows(lsfState),
  goneOnError: /is not found/i,
});

const local: SchedulerAdapter = {
  name: "local",
  submitCommand: "sh",
  defaultTemplate: LOCAL_TEMPLATE,
  // Detached and immune to the caller's hangup; the pid printed is the id.
  submitArgv: (script, o) => ["sh", "-c", 'nohup /bin/bash "$1" >"$2" 2>&1 </dev/null & echo $!', "balsam-local", script, `${o.launchDir}/output.txt`],
  parseSubmitOutput: (out) => firstMatch(out, "the local launch", /^\s*(\d+)\s*$/m),
  statusArgv: (ids) => ["ps", "-o", "pid=,stat=", "-p", ids.join(",")],
  // A zombie has exited; its parent just has not reaped it yet.
  parseStatus: idFirstRows((stat) => (stat.startsWith("Z") ? "finished" : "running")),
  // ps exits 1 with nothing on stderr when none of the pids exists.
  goneOnError: /^\s*$/,
  hostBound: true,
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
