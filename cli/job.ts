import type { Command } from "commander";
import { action, withClient } from "./common.js";
import { addJobInteractively, addJobOptions, jobSpecFrom, type JobOptionValues } from "./jobopts.js";

export function register(program: Command): Command {
  const cmd = program.command("job").description("add a new Balsam job");
  return addJobOptions(cmd, { workflowRequired: true }).action(
    action(async (o: JobOptionValues) => {
      const spec = jobSpecFrom(o);
      await withClient((b) => addJobInteractively(b, spec, { yes: o.yes === true, warnExisting: true }));
    }),
  );
}
