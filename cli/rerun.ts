import type { Command } from "commander";
import type { JobFilter } from "../libs/client/index.js";
import { FINAL_STATES } from "../libs/models/index.js";
import { UsageError } from "../libs/errors/index.js";
import { action, out, withClient } from "./common.js";
import { collectTag, note, parseState, parseTagWords, parseWorkflow, preview } from "./format.js";
import { EXIT_INTERRUPTED, withProgress } from "./progress.js";

interface RerunOptions {
  id?: string;
  name?: string;
  wf?: string;
  state?: string;
  tag?: string[];
  restart?: boolean;
}

export function register(program: Command): Command {
  return program
    .command("rerun")
    .description("run finished, failed or killed jobs again (history kept)")
    .argument("[job]", "one job: id or unique prefix (refused, with why, when it cannot be rerun)")
    .option("--id <part>", "jobs whose id contains PART (ignoring case)")
    .option("--name <part>", "jobs whose name contains PART")
    .option("--wf <workflow>", "jobs of this workflow")
    .option("--state <state>", "jobs in this state: FAILED, USER_KILLED or JOB_FINISHED (default: all three)")
    .option("--tag <KEY=VALUE>", "jobs with this tag (repeatable: all must match)", collectTag)
    .option("--restart", "go to RESTART_READY instead of READY: no new stage-in or preprocess")
    .addHelpText(
      "after",
      "\nEach job goes back to READY, or AWAITING_PARENTS while a parent has not finished (or is rerun with it);\n" +
        "its attempts count goes up. Children that failed only because it failed or was killed wait for it again.\n" +
        "Balsam 0.x spelling of the same: balsam modify ID state CREATED",
    )
    .action(
      action(async (ref: string | undefined, o: RerunOptions) => {
        const state = parseState(o.state);
        if (state && !FINAL_STATES.includes(state)) throw new UsageError(`only FAILED, USER_KILLED or JOB_FINISHED jobs can be rerun, not ${state}`);
        const workflow = parseWorkflow(o.wf);
        const tags = parseTagWords(o.tag);
        const selectors = o.id || o.name || workflow || state || tags;
        if (ref && selectors) throw new UsageError("give either a job id or selectors (--id, --name, --wf, --state, --tag), not both");
        if (!ref && !selectors) {
          throw new UsageError("rerun needs a job id or a selector: --id, --name, --wf, --state or --tag", { hint: "e.g. balsam rerun --wf TEST --state FAILED" });
        }
        const filter: JobFilter = { id: o.id || undefined, name: o.name || undefined, workflow, state, tags };
        const r = await withClient((b) =>
          withProgress((p) => b.jobs.rerun(ref ?? filter, { ...p, restart: o.restart === true })).then((x) => x.result),
        );
        if (r.interrupted) {
          out(`interrupted: rerun ${r.rerun.length} job(s); the others chosen are untouched`);
          process.exitCode = EXIT_INTERRUPTED;
          return;
        }
        if (r.rerun.length === 0 && r.skipped.length === 0) {
          out("no finished, failed or killed job matches; nothing rerun");
          return;
        }
        out(`rerun ${r.rerun.length} job(s)${r.rerun.length ? `: ${preview(r.rerun)}` : ""}`);
        if (r.rearmed.length) out(`re-armed ${r.rearmed.length} job(s) that had failed because of them: ${preview(r.rearmed)}`);
        for (const s of r.skipped.slice(0, 10)) note(`not rerun: ${s.id}: ${s.reason}`);
        if (r.skipped.length > 10) note(`… and ${r.skipped.length - 10} more not rerun`);
        if (r.rerun.length === 0) process.exitCode = 1;
      }),
    );
}
