/**
 * Launch-script templates: the placeholders a template may use, their
 * values for one launch, the rendering, and each scheduler's default
 * template (used by the adapters in schedulers.ts).
 */
import { parse as shellParse, quote as shellQuote } from "shell-quote";
import { ConfigError, UsageError } from "../errors/index.js";

export const SCHEDULER_NAMES = ["slurm", "cobalt", "pbs", "lsf", "local"] as const;
export type SchedulerName = (typeof SCHEDULER_NAMES)[number];

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
  // Any `{{...}}` on one line is a placeholder: a misspelt one (`{{launch-id}}`) is refused too, not left in the script.
  const out = template.replace(/\{\{([^{}\n]*)\}\}/g, (whole, inner: string) => {
    const name = inner.trim();
    const v = Object.hasOwn(values, name) ? values[name] : undefined;
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

export const SLURM_TEMPLATE = template(
  "Slurm",
  // Each launcher task gets the node's CPUs: a site confining steps with
  // cgroups would otherwise squeeze every packed job onto one core.
  `srun --ntasks-per-node=1 -N {{nodes}} -n {{nodes}} --cpus-per-task="\${SLURM_CPUS_ON_NODE:-1}" {{launcher}}`,
  "{{launcher}}",
);

export const COBALT_TEMPLATE = template(
  "Cobalt (aprun)",
  // -cc none: the launcher and its jobs are not pinned to the first core.
  "aprun -n {{nodes}} -N 1 -cc none {{launcher}}",
  "{{launcher}}",
);

export const PBS_TEMPLATE = template(
  "PBS (mpiexec of MPICH/Cray PALS; Open MPI wants --map-by ppr:1:node)",
  "mpiexec -n {{nodes}} -ppn 1 {{launcher}}",
  "{{launcher}}",
);

export const LSF_TEMPLATE = template(
  "LSF (jsrun where there is one, else mpirun)",
  `if command -v jsrun >/dev/null 2>&1; then
    jsrun -n {{nodes}} -r 1 -a 1 -c ALL_CPUS {{launcher}}
  else
    mpirun -ppn 1 -n {{nodes}} {{launcher}}
  fi`,
  "{{launcher}}",
);

export const LOCAL_TEMPLATE = `${HEADER}
# This machine is the whole allocation: one launcher, in either mode.
{{launcher}}
${TRAILER}`;
