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
} from "../libs/models/index.js";
import { ConflictError, UsageError } from "../libs/errors/index.js";
import { action, out, withClient } from "./common.js";
import { cell } from "./format.js";

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

export function register(program: Command): Command {
  return (
    program
      .command("modify")
      .description("alter job or application")
      .argument("<id>", "job id or unique prefix; with --type apps, the app name")
      .argument("<field>", "snake_case field name, e.g. num_nodes, args, state")
      .argument("<value>", "new value, parsed by the field's type (a value starting with '-' goes after --)")
      .addOption(new Option("--type <type>", "what ID names").choices(["jobs", "apps"]).default("jobs"))
      // A VALUE like '--evaluator x' reads as an unknown option; say how to pass it.
      .configureOutput({
        outputError: (str, write) => {
          const msg = str.replace(/^error: /, "balsam: ");
          write(/unknown option/.test(msg) ? msg.replace(/\n?$/, " (a VALUE starting with '-' goes after --: balsam modify ID FIELD -- VALUE)\n") : msg);
        },
      })
      .action(
        action(async (id: string, field: string, raw: string, o: { type: "jobs" | "apps" }) => {
          const spec = fieldSpec(o.type, field);
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
