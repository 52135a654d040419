import { Option, type Command } from "commander";
import {
  APP_FIELDS,
  JOB_FIELDS,
  JOB_STATES,
  appField,
  isJobState,
  jobField,
  parseFieldValue,
  type FieldSpec,
  type Job,
  type JobState,
} from "../libs/models/index.js";
import type { JobFilter } from "../libs/client/index.js";
import { ConflictError, UsageError } from "../libs/errors/index.js";
import { action, out, withClient } from "./common.js";
import { cell, collectTag, note, parseState, parseTagWords, parseWorkflow, preview } from "./format.js";

function editable(specs: readonly FieldSpec[]): string {
  return specs
    .filter((f) => f.editable)
    .map((f) => f.snake)
    .join(", ");
}

function fieldSpec(kind: "jobs" | "apps", name: string): FieldSpec {
  const specs = kind === "jobs" ? JOB_FIELDS : APP_FIELDS;
  const spec = kind === "jobs" ? jobField(name) : appField(name);
  const what = kind === "jobs" ? "job" : "app";
  if (!spec) throw new UsageError(`unknown ${what} field '${name}'`, { hint: `fields you can modify: ${editable(specs)}` });
  if (!spec.editable) throw new UsageError(`the ${what} field ${name} cannot be modified`, { hint: `fields you can modify: ${editable(specs)}` });
  return spec;
}

function parseValue(spec: FieldSpec, raw: string): unknown {
  try {
    return parseFieldValue(spec, raw);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

interface ModifyOptions {
  type: "jobs" | "apps";
  tag?: string[];
  wf?: string;
  state?: string;
}

/** The selectors' filter, or undefined for `modify ID FIELD VALUE`; every check is local, before any server. */
function selectionOf(id: string | undefined, o: ModifyOptions): JobFilter | undefined {
  const tags = parseTagWords(o.tag);
  const workflow = parseWorkflow(o.wf);
  const state = parseState(o.state);
  if (!tags && !workflow && !state) {
    if (id === undefined) throw new UsageError("modify needs a job id, or --tag KEY=VALUE", { hint: "balsam modify ID FIELD VALUE, or balsam modify --tag K=V FIELD VALUE" });
    return undefined;
  }
  if (o.type === "apps") throw new UsageError("--tag, --wf and --state select jobs, not apps");
  if (id !== undefined) throw new UsageError("give either a job id or selectors (--tag, with --wf/--state), not both");
  if (!tags) throw new UsageError("--wf and --state narrow --tag; to change one job give its id");
  return { tags, workflow, state };
}

/** `modify --tag K=V FIELD VALUE`: each matching job changed as `modify ID` changes one; refusals listed, exit 1 if any. */
async function modifySelected(f: JobFilter, spec: FieldSpec, raw: string): Promise<void> {
  if (spec.type === "state" && !isJobState(raw)) throw new UsageError(`unknown state '${raw}'`, { hint: `states: ${JOB_STATES.join(", ")}` });
  const change = spec.type === "state" ? { state: raw as JobState } : { set: { [spec.key]: parseValue(spec, raw) } as Partial<Job> };
  const { modifyWhere } = await import("../libs/client/by-filter.js");
  const r = await withClient((b) => modifyWhere(b.jobs, f, change));
  if (r.done.length === 0 && r.refused.length === 0) return note("no jobs match; nothing modified");
  out(`modified ${r.done.length} job(s): ${spec.snake} = ${raw}${r.done.length ? ` (${preview(r.done)})` : ""}`);
  if (r.refused.length) {
    note(`${r.refused.length} job(s) not modified: ${preview(r.refused.map((x) => `${x.id} (${x.reason})`), 3)}`);
    process.exitCode = 1;
  }
}

export function register(program: Command): Command {
  return (
    program
      .command("modify")
      .description("alter job or application")
      // All optional to commander, so ID can be left out with --tag; checked in the action.
      .argument("[id]", "job id or unique prefix; with --type apps, the app name; left out with --tag")
      .argument("[field]", "snake_case field name, e.g. num_nodes, args, state")
      .argument("[value]", "new value, parsed by the field's type (a value starting with '-' goes after --)")
      .addOption(new Option("--type <type>", "what ID names").choices(["jobs", "apps"]).default("jobs"))
      .option("--tag <KEY=VALUE>", "instead of ID: every job with this tag (repeatable: all must match): balsam modify --tag K=V FIELD VALUE", collectTag)
      .option("--wf <workflow>", "with --tag: only jobs of this workflow")
      .option("--state <state>", "with --tag: only jobs in this state")
      // A VALUE like '--evaluator x' reads as an unknown option; say how to pass it.
      .configureOutput({
        outputError: (str, write) => {
          const msg = str.replace(/^error: /, "balsam: ");
          write(/unknown option/.test(msg) ? msg.replace(/\n?$/, " (a VALUE starting with '-' goes after --: balsam modify ID FIELD -- VALUE)\n") : msg);
        },
      })
      .action(
        action(async (w1: string | undefined, w2: string | undefined, w3: string | undefined, o: ModifyOptions) => {
          const [idArg, field, raw] = w3 === undefined ? [undefined, w1, w2] : [w1, w2, w3];
          if (field === undefined || raw === undefined) throw new UsageError("modify needs a FIELD and a VALUE", { hint: "balsam modify ID FIELD VALUE, or balsam modify --tag K=V FIELD VALUE" });
          const spec = fieldSpec(o.type, field);
          const selection = selectionOf(idArg, o);
          if (selection) return modifySelected(selection, spec, raw);
          const id = idArg as string;
          if (o.type === "apps") {
            const value = raw;
            if ((spec.key === "name" || spec.key === "executable") && !value.trim()) throw new UsageError(`an app's ${field} must not be empty`);
            await withClient(async (b) => {
              const app = await b.apps.get(id);
              if (spec.key === "name" && value !== app.name) {
                if (await b.apps.find(value)) throw new ConflictError(`an app named '${value}' already exists`);
                // Jobs name their app; renaming it would leave them pointing at nothing.
                const users = await b.jobs.filter({ application: app.name }).count();
                if (users > 0) throw new ConflictError(`${users} job(s) use app '${app.name}'`, { hint: "add a new app with `balsam app` instead of renaming" });
              }
              await b.apps.update(app.name, { [spec.key]: value });
              out(`app ${app.name}: ${field} = ${value}`);
            });
            return;
          }
          if (spec.type === "state") {
            if (!isJobState(raw)) throw new UsageError(`unknown state '${raw}'`, { hint: `states: ${JOB_STATES.join(", ")}` });
            await withClient(async (b) => {
              const before = await b.jobs.get(id);
              const after = await b.jobs.setState(before._id, raw, "set by balsam modify");
              out(`${after._id}: state ${before.state} -> ${after.state}`);
            });
            return;
          }
          const value = parseValue(spec, raw);
          await withClient(async (b) => {
            const job = await b.jobs.modify(id, { [spec.key]: value } as Partial<Job>);
            out(`${job._id}: ${field} = ${cell(spec, (job as unknown as Record<string, unknown>)[spec.key])}`);
          });
        }),
      )
  );
}
