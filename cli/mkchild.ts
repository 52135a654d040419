import type { Command } from "commander";
import { UsageError } from "../libs/errors/index.js";
import { action, withClient } from "./common.js";
import { addJobInteractively, addJobOptions, jobSpecFrom, type JobOptionValues } from "./jobopts.js";

export function register(program: Command): Command {
  const cmd = program
    .command("mkchild")
    .description("Create a child job of a specified job")
    .option("--parent <id>", "parent job id or unique prefix (default: $BALSAM_JOB_ID, set inside a running job)");
  return addJobOptions(cmd, { workflowRequired: false }).action(
    action(async (o: JobOptionValues & { parent?: string }) => {
      const parentRef = o.parent ?? process.env.BALSAM_JOB_ID;
      if (!parentRef) throw new UsageError("no parent job", { hint: "give --parent ID, or run mkchild inside a Balsam job (BALSAM_JOB_ID)" });
      // Local checks first, with a stand-in workflow when the parent's is still unknown.
      jobSpecFrom(o, { workflow: o.workflow ?? "parent" });
      await withClient(async (b) => {
        const parent = await b.jobs.get(parentRef);
        const spec = jobSpecFrom(o, { workflow: parent.workflow, parents: [parent._id] });
        await addJobInteractively(b, spec, { yes: o.yes === true, warnExisting: spec.workflow !== parent.workflow });
      });
    }),
  );
}
