import { Argument, type Command } from "commander";
import { aliasOption } from "./argv.js";
import { WAITING_STATES, type Job } from "../libs/models/index.js";
import type { Balsam, JobFilter } from "../libs/client/index.js";
import { UsageError } from "../libs/errors/index.js";
import { action, confirm, isTerminal, out, withClient } from "./common.js";
import { EXIT_INTERRUPTED, withProgress } from "./progress.js";
import { collectTag, note, objectsArg, preview, selectorFilter, type SelectorOptions } from "./format.js";

interface RmOptions extends SelectorOptions {
  all?: boolean;
  recursive?: boolean;
  force?: boolean;
}

const VICTIM_FIELDS = { _id: 1, name: 1, workflow: 1, attempts: 1, state: 1, lock: 1, hasChildren: 1, chunk: 1 } as const;

/**
 * Off a terminal only --force deletes, so a script never hangs on a prompt;
 * checked before the preview so the refusal is the one line printed.
 */
function checkCanAsk(o: RmOptions, what: string): void {
  if (!o.force && !isTerminal()) throw new UsageError(`rm asks before deleting ${what}`, { hint: "add --force to delete without asking when not on a terminal" });
}

async function mayDelete(o: RmOptions, what: string): Promise<boolean> {
  return o.force === true || confirm(`delete ${what}?`);
}

/**
 * `--wf PART` matches workflows as 0.x did (by substring); when that takes
 * in more than the workflow named exactly PART, say which, and refuse to
 * delete them unasked: --force never widens silently.
 */
async function widenedWorkflows(b: Balsam, o: RmOptions): Promise<void> {
  if (o.wf === undefined) return;
  const wfs = await b.jobs.workflowsContaining(o.wf);
  if (wfs.length === 0 || (wfs.length === 1 && wfs[0] === o.wf)) return;
  const which = `--wf ${o.wf} matches ${wfs.length} workflow(s): ${preview(wfs)}`;
  if (o.force) throw new UsageError(`${which}; refusing to remove jobs of workflows not named exactly with --force`, { hint: `use --wf-exact ${o.wf}, or run without --force to see and confirm` });
  note(which);
}

async function rmJobs(b: Balsam, o: RmOptions, filter: JobFilter): Promise<void> {
  await widenedWorkflows(b, o);
  const matched = await b.jobs.filter(filter).list({ projection: VICTIM_FIELDS, sort: { createdAt: 1 } });
  if (matched.length === 0) {
    out("no jobs match; nothing removed");
    return;
  }
  // Only jobs that ever got a child can have dependents (hasChildren is set
  // with the child and never cleared): 10k jobs without children cost no
  // query over parents, which FerretDB cannot answer from an index.
  const ids = matched.filter((j) => j.hasChildren !== false).map((j) => j._id);
  const below = ids.length ? await b.jobs.dependents(ids, { recursive: o.recursive === true, projection: VICTIM_FIELDS }) : [];
  const victims: Job[] = o.recursive ? [...matched, ...below] : matched;
  const orphans = o.recursive ? [] : below.filter((j) => WAITING_STATES.includes(j.state));
  const what = `${victims.length} job(s)`;
  if (!o.force) await b.jobs.refuseRunning(victims);
  checkCanAsk(o, what);
  if (!o.force) {
    note(`will remove ${what}: ${preview(victims.map((j) => j.name))}${o.recursive && below.length ? ` (${below.length} of them depend on the matched jobs)` : ""}`);
    if (orphans.length) note(`${orphans.length} job(s) waiting on them would be left waiting: ${preview(orphans.map((j) => j.name))} (--recursive removes them too)`);
  }
  if (!(await mayDelete(o, what))) {
    out("nothing removed");
    return;
  }
  const { result: n, interrupted } = await withProgress((p) => {
    p.onProgress(0, victims.length);
    return b.jobs.deleteJobs(victims, { ...p, evenIfRunning: o.force === true });
  });
  if (interrupted) {
    out(`interrupted: removed ${n} of ${victims.length} job(s); the other ${victims.length - n} are untouched`);
    process.exitCode = EXIT_INTERRUPTED;
    return;
  }
  out(`removed ${n} job(s)`);
  if (orphans.length) {
    note(
      `${orphans.length} job(s) are left waiting on removed parents: ${preview(orphans.map((j) => j._id))} (remove them with --recursive, or \`balsam modify ID state FAILED\`)`,
    );
  }
}

async function rmApps(b: Balsam, o: RmOptions): Promise<void> {
  const apps = (await b.apps.list(o.name || undefined)).filter((a) => !o.id || a._id.toLowerCase().includes(o.id.toLowerCase()));
  if (apps.length === 0) {
    out("no apps match; nothing removed");
    return;
  }
  const names = apps.map((a) => a.name);
  const what = `${apps.length} app(s)`;
  checkCanAsk(o, what);
  if (!o.force) note(`will remove ${what}: ${preview(names)}`);
  for (const name of names) {
    const users = await b.jobs.filter({ application: name }).count();
    if (users > 0) note(`warning: ${users} job(s) use app ${name}; they cannot run until an app of that name exists again`);
  }
  if (!(await mayDelete(o, what))) {
    out("nothing removed");
    return;
  }
  const n = await b.apps.deleteNames(names);
  out(`removed ${n} app(s): ${preview(names)}`);
}

export function register(program: Command): Command {
  const cmd = program.command("rm");
  aliasOption(cmd, "--wf-filter", "--wf");
  return cmd
    .description("remove jobs or applications from the database")
    .addArgument(new Argument("<objects>", "what to remove: jobs or apps (or job, app)").argParser(objectsArg(["jobs", "apps"] as const)))
    .option("--name <part>", "those whose name contains PART (literally, ignoring case)")
    .option("--id <part>", "those whose id contains PART")
    .option("--wf <part>", "jobs: only in workflows whose name contains PART, ignoring case (narrows the other selectors; with --force, only a workflow named exactly PART; 0.x: --wf-filter)")
    .option("--wf-exact <workflow>", "jobs: only in the workflow named exactly WORKFLOW")
    .option("--state <state>", "jobs: only in this state")
    .option("--tag <KEY=VALUE>", "jobs: only those with this tag (repeatable: all must match)", collectTag)
    .option("--all", "everything (within --wf when given)")
    .option("--recursive", "jobs: also remove every job depending on the removed ones")
    .option("--force", "do not ask (required when not on a terminal); removes even jobs a launcher is running")
    .action(
      action(async (objects: "jobs" | "apps", o: RmOptions) => {
        if (objects === "apps") {
          const flags = { wf: "--wf", wfExact: "--wf-exact", state: "--state", tag: "--tag", recursive: "--recursive" } as const;
          const jobOnly = (Object.keys(flags) as Array<keyof typeof flags>).filter((k) => o[k] !== undefined);
          if (jobOnly[0]) throw new UsageError(`${flags[jobOnly[0]]} applies to jobs, not apps`);
          if (!o.name && !o.id && !o.all) throw new UsageError("rm apps needs a selector: --name, --id or --all");
          await withClient((b) => rmApps(b, o));
          return;
        }
        const filter = selectorFilter(o);
        if (!o.name && !o.id && !filter.state && !filter.tags && !o.all) {
          throw new UsageError("rm jobs needs a selector: --name, --id, --state, --tag or --all", { hint: "--wf WF narrows any of them; --wf WF --all removes a whole workflow" });
        }
        await withClient((b) => rmJobs(b, o, filter));
      }),
    );
}
