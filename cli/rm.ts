import { Argument, type Command } from "commander";
import { aliasOption } from "./argv.js";
import { WAITING_STATES, type Job } from "../libs/models/index.js";
import type { Balsam, JobFilter } from "../libs/client/index.js";
import { UsageError } from "../libs/errors/index.js";
import { action, confirm, isTerminal, out, withClient } from "./common.js";
import { EXIT_INTERRUPTED, withProgress } from "./progress.js";
import { note, objectsArg, parseState, parseWorkflow, preview } from "./format.js";

interface RmOptions {
  name?: string;
  id?: string;
  wf?: string;
  state?: string;
  all?: boolean;
  recursive?: boolean;
  force?: boolean;
}

const VICTIM_FIELDS = { _id: 1, name: 1, workflow: 1, attempts: 1, state: 1, lock: 1 } as const;

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

async function rmJobs(b: Balsam, o: RmOptions, filter: JobFilter): Promise<void> {
  const matched = await b.jobs.filter(filter).list({ projection: VICTIM_FIELDS, sort: { createdAt: 1 } });
  if (matched.length === 0) {
    out("no jobs match; nothing removed");
    return;
  }
  const ids = matched.map((j) => j._id);
  const below = await b.jobs.dependents(ids, { recursive: o.recursive === true, projection: VICTIM_FIELDS });
  const victims: Job[] = o.recursive ? [...matched, ...below] : matched;
  const orphans = o.recursive ? [] : below.filter((j) => WAITING_STATES.includes(j.state));
  const what = `${victims.length} job(s)`;
  if (!o.force) b.jobs.refuseRunning(victims);
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
  const apps = (await b.apps.list(o.name || undefined)).filter((a) => !o.id || a._id.startsWith(o.id));
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
    .option("--name <part>", "those whose name contains PART (literally)")
    .option("--id <prefix>", "those whose id starts with PREFIX")
    .option("--wf <workflow>", "jobs: only in this workflow (narrows the other selectors; 0.x: --wf-filter)")
    .option("--state <state>", "jobs: only in this state")
    .option("--all", "everything (within --wf when given)")
    .option("--recursive", "jobs: also remove every job depending on the removed ones")
    .option("--force", "do not ask (required when not on a terminal); removes even jobs a launcher is running")
    .action(
      action(async (objects: "jobs" | "apps", o: RmOptions) => {
        if (objects === "apps") {
          const jobOnly = (["wf", "state", "recursive"] as const).filter((k) => o[k] !== undefined);
          if (jobOnly.length) throw new UsageError(`--${jobOnly[0]} applies to jobs, not apps`);
          if (!o.name && !o.id && !o.all) throw new UsageError("rm apps needs a selector: --name, --id or --all");
          await withClient((b) => rmApps(b, o));
          return;
        }
        const state = parseState(o.state);
        const workflow = parseWorkflow(o.wf);
        if (!o.name && !o.id && !state && !o.all) {
          throw new UsageError("rm jobs needs a selector: --name, --id, --state or --all", { hint: "--wf WF narrows any of them; --wf WF --all removes a whole workflow" });
        }
        const filter: JobFilter = { name: o.name || undefined, id: o.id || undefined, workflow, state };
        await withClient((b) => rmJobs(b, o, filter));
      }),
    );
}
