import { Argument, type Command } from "commander";
import { aliasOption } from "./argv.js";
import { APP_FIELDS, JOB_FIELDS, JOB_STATES, appField, type FieldSpec, type Job, type JobState } from "../libs/models/index.js";
import type { Balsam, JobFilter } from "../libs/client/index.js";
import { UsageError } from "../libs/errors/index.js";
import { action, withClient } from "./common.js";
import { DEFAULT_LS_LIMIT, cell, collectTag, lsFields, lsLimit, note, objectsArg, printJson, printLines, table, toJsonRecord, valueOf, selectorFilter, type SelectorOptions } from "./format.js";

type Objects = "jobs" | "apps" | "wf" | "queues";

interface LsOptions extends SelectorOptions {
  byStates?: boolean;
  history?: boolean;
  tree?: boolean;
  verbose?: boolean;
  json?: boolean;
}

interface Resolved {
  objects: Objects;
  filter: JobFilter;
  fields: FieldSpec[];
  limit: number;
  json: boolean;
  verbose: boolean;
  view: "table" | "byStates" | "history" | "tree";
}

const APP_BASE = ["name", "executable", "description"].map((n) => appField(n) as FieldSpec);

/** Everything the command line and the environment say, checked before any server is contacted. */
function resolve(objects: Objects, o: LsOptions): Resolved {
  const views = (["byStates", "history", "tree"] as const).filter((k) => o[k]);
  if (views.length > 1) throw new UsageError("give at most one of --by-states, --history, --tree");
  const view = views[0] ?? "table";
  if (objects !== "jobs" && view !== "table") throw new UsageError(`--${view === "byStates" ? "by-states" : view} lists jobs, not ${objects}`);
  const wf = o.wf ?? o.wfExact;
  if (objects === "queues" && (wf !== undefined || o.state !== undefined || o.name !== undefined || o.id !== undefined || o.tag !== undefined)) throw new UsageError("ls queues takes no selectors");
  if (objects === "apps" && (wf !== undefined || o.state !== undefined || o.tag !== undefined)) throw new UsageError("--wf, --state and --tag select jobs, not apps");
  const filter = selectorFilter(o);
  const fields = objects === "jobs" && view === "table" ? (o.verbose ? [...JOB_FIELDS] : lsFields()) : [];
  return { objects, filter, fields, limit: lsLimit(), json: o.json === true, verbose: o.verbose === true, view };
}

/**
 * Reads at most `limit` jobs (one more, to know whether it cut) with only the
 * fields shown, then orders them by createdAt here. The server is not asked
 * to sort: FerretDB sorts by decoding every match (40 s for 100k jobs here
 * against 2 s for the first 5000 unsorted) and MongoDB would need a
 * createdAt index; unsorted, both return insertion order within what the
 * filter's index yields. The sort is stable, so jobs added in one batch
 * (same createdAt) stay in insertion order. No count follows a cut: on
 * FerretDB it costs as much as the sort.
 */
async function limitedJobs(b: Balsam, r: Resolved, projection: Record<string, 0 | 1> | undefined): Promise<Job[]> {
  const keep = projection ? { ...projection, createdAt: 1 as const } : undefined;
  const rows = await b.jobs.filter(r.filter).list({ limit: r.limit + 1, ...(keep ? { projection: keep } : {}) });
  if (rows.length > r.limit) {
    note(`showing ${r.limit} jobs; more match (set BALSAM_LS_LIMIT to see more, or narrow with --wf/--name/--state/--tag)`);
    rows.length = r.limit;
  }
  return rows.sort((x, y) => x.createdAt.getTime() - y.createdAt.getTime());
}

function projectionOf(keys: readonly string[]): Record<string, 0 | 1> {
  return Object.fromEntries([...new Set(["_id", ...keys])].map((k) => [k, 1 as const]));
}

async function lsJobs(b: Balsam, r: Resolved): Promise<void> {
  const jobs = await limitedJobs(b, r, r.verbose ? undefined : projectionOf(r.fields.map((f) => f.key)));
  if (r.json) return printJson(jobs.map((j) => toJsonRecord(j, r.fields)));
  if (jobs.length === 0) return note("no jobs found");
  if (r.verbose) {
    const width = Math.max(...r.fields.map((f) => f.snake.length));
    const lines: string[] = [];
    for (const j of jobs) {
      if (lines.length) lines.push("");
      for (const f of r.fields) lines.push(`${f.snake.padEnd(width)} : ${cell(f, valueOf(j, f))}`);
    }
    return printLines(lines);
  }
  const columns = r.fields.map((f) => f.snake);
  const rows = jobs.map((j) => Object.fromEntries(r.fields.map((f) => [f.snake, cell(f, valueOf(j, f))])));
  printLines(table(columns, rows));
}

async function lsByStates(b: Balsam, r: Resolved): Promise<void> {
  const counts = await b.jobs.filter(r.filter).byState();
  const states = JOB_STATES.filter((s) => (counts[s] ?? 0) > 0);
  const total = states.reduce((a, s) => a + (counts[s] ?? 0), 0);
  if (r.json) return printJson({ total, states: Object.fromEntries(states.map((s) => [s, counts[s]])) });
  const rows: Array<Record<string, string>> = states.map((s) => ({ state: s, count: String(counts[s]) }));
  rows.push({ state: "total", count: String(total) });
  printLines(table(["state", "count"], rows));
}

async function lsHistory(b: Balsam, r: Resolved): Promise<void> {
  const jobs = await limitedJobs(b, r, projectionOf(["name", "workflow", "state", "stateHistory"]));
  if (r.json) {
    return printJson(
      jobs.map((j) => ({
        job_id: j._id,
        name: j.name,
        workflow: j.workflow,
        state: j.state,
        state_history: j.stateHistory.map((h) => ({ at: h.at.toISOString(), state: h.state, message: h.message })),
      })),
    );
  }
  if (jobs.length === 0) return note("no jobs found");
  const width = Math.max(...JOB_STATES.map((s) => s.length));
  const lines: string[] = [];
  for (const j of jobs) {
    if (lines.length) lines.push("");
    lines.push(`${j._id} | ${j.name} | ${j.workflow} | ${j.state}`);
    for (const h of j.stateHistory) lines.push(`  ${h.at.toISOString()}  ${h.message ? h.state.padEnd(width) + "  " + h.message : h.state}`);
  }
  printLines(lines);
}

interface TreeNode {
  job_id: string;
  name: string;
  workflow: string;
  state: JobState;
  /** Shown in full further up; drawn once so a DAG full of diamonds stays linear in size. */
  repeated?: true;
  children: TreeNode[];
}

/**
 * The dependency forest of the listed jobs: a job whose parents are not
 * listed is a root; a job with several listed parents is drawn under each,
 * its own children only under the first.
 */
function forest(jobs: readonly Job[]): TreeNode[] {
  const byId = new Map(jobs.map((j) => [j._id, j]));
  const kids = new Map<string, Job[]>();
  for (const j of jobs) {
    for (const p of j.parents) {
      if (!byId.has(p)) continue;
      const list = kids.get(p) ?? [];
      list.push(j);
      kids.set(p, list);
    }
  }
  const expanded = new Set<string>();
  const build = (j: Job): TreeNode => {
    const node: TreeNode = { job_id: j._id, name: j.name, workflow: j.workflow, state: j.state, children: [] };
    if (expanded.has(j._id)) return { ...node, repeated: true };
    expanded.add(j._id);
    node.children = (kids.get(j._id) ?? []).map(build);
    return node;
  };
  const roots = jobs.filter((j) => !j.parents.some((p) => byId.has(p))).map(build);
  // Jobs only reachable through a cycle (which addDependency refuses) still get shown.
  for (const j of jobs) if (!expanded.has(j._id)) roots.push(build(j));
  return roots;
}

function label(n: TreeNode): string {
  return `${n.name} [${n.state}] ${n.job_id}${n.repeated ? " (shown above)" : ""}`;
}

async function lsTree(b: Balsam, r: Resolved): Promise<void> {
  const jobs = await limitedJobs(b, r, projectionOf(["name", "workflow", "state", "parents"]));
  const roots = forest(jobs);
  if (r.json) return printJson(roots);
  if (jobs.length === 0) return note("no jobs found");
  const lines: string[] = [];
  for (const root of roots) {
    lines.push(label(root));
    drawChildren(root.children, "", lines);
  }
  printLines(lines);
}

function drawChildren(nodes: readonly TreeNode[], prefix: string, lines: string[]): void {
  nodes.forEach((n, i) => {
    const last = i === nodes.length - 1;
    lines.push(`${prefix}${last ? "└── " : "├── "}${label(n)}`);
    drawChildren(n.children, prefix + (last ? "    " : "│   "), lines);
  });
}

async function lsWorkflows(b: Balsam, r: Resolved): Promise<void> {
  const counts = await b.jobs.filter(r.filter).byWorkflowState();
  const byWf = new Map<string, Partial<Record<JobState, number>>>();
  for (const c of counts) {
    const m = byWf.get(c.workflow) ?? {};
    m[c.state] = (m[c.state] ?? 0) + c.n;
    byWf.set(c.workflow, m);
  }
  const wfs = [...byWf.keys()].sort();
  const total = (m: Partial<Record<JobState, number>>): number => Object.values(m).reduce((a, n) => a + n, 0);
  if (r.json) return printJson(wfs.map((w) => ({ workflow: w, total: total(byWf.get(w) ?? {}), states: byWf.get(w) ?? {} })));
  if (wfs.length === 0) return note("no workflows found");
  const states = JOB_STATES.filter((s) => counts.some((c) => c.state === s));
  const rows = wfs.map((w) => {
    const m = byWf.get(w) ?? {};
    return { workflow: w, total: String(total(m)), ...Object.fromEntries(states.map((s) => [s, String(m[s] ?? 0)])) };
  });
  printLines(table(["workflow", "total", ...states], rows));
}

async function lsApps(b: Balsam, r: Resolved): Promise<void> {
  const apps = (await b.apps.list(r.filter.name)).filter((a) => !r.filter.id || a._id.toLowerCase().includes(r.filter.id.toLowerCase()));
  const fields = r.verbose ? [...APP_FIELDS] : APP_BASE;
  if (r.json) return printJson(apps.map((a) => toJsonRecord(a, fields)));
  if (apps.length === 0) return note("no apps found");
  const rows = apps.map((a) => Object.fromEntries(fields.map((f) => [f.snake, cell(f, valueOf(a, f))])));
  printLines(table(fields.map((f) => f.snake), rows));
}

export function register(program: Command): Command {
  const cmd = program.command("ls");
  aliasOption(cmd, "--wf-filter", "--wf");
  return cmd
    .description("list jobs, applications, or jobs-by-workflow")
    .addArgument(new Argument("[objects]", "what to list: jobs, apps, wf or queues (or job, app)").argParser(objectsArg(["jobs", "apps", "wf", "queues"] as const)).default("jobs"))
    .option("--name <part>", "only those whose name contains PART (literally, ignoring case)")
    .option("--id <part>", "only those whose id contains PART")
    .option("--wf <part>", "only jobs of workflows whose name contains PART (ignoring case; 0.x: --wf-filter)")
    .option("--wf-exact <workflow>", "only jobs of the workflow named exactly WORKFLOW")
    .option("--state <state>", "only jobs in this state")
    .option("--tag <KEY=VALUE>", "only jobs with this tag (repeatable: all must match)", collectTag)
    .option("--by-states", "count jobs per state")
    .option("--history", "show each job's state history with timestamps")
    .option("--tree", "show the dependency tree")
    .option("--verbose", "every field")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      `\nEnvironment:\n  BALSAM_LS_FIELDS  extra job columns, colon-separated snake_case names (e.g. num_nodes:args)\n  BALSAM_LS_LIMIT   at most this many jobs are listed (default ${DEFAULT_LS_LIMIT})`,
    )
    .action(
      action(async (objects: Objects, o: LsOptions) => {
        const r = resolve(objects, o);
        await withClient(async (b) => {
          if (r.objects === "apps") return lsApps(b, r);
          if (r.objects === "wf") return lsWorkflows(b, r);
          if (r.objects === "queues") return (await import("./queues.js")).listQueues(b, r.json);
          if (r.view === "byStates") return lsByStates(b, r);
          if (r.view === "history") return lsHistory(b, r);
          if (r.view === "tree") return lsTree(b, r);
          return lsJobs(b, r);
        }, { readOnly: true });
      }),
    );
}
