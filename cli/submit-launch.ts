import type { Command } from "commander";
import { action } from "./common.js";
import { BalsamError } from "../libs/errors/index.js";

export function register(program: Command): Command {
  return program
    .command("submit-launch")
    .description("Submit a launcher job to the batch queue")
    .requiredOption("-n, --nodes <n>", "number of nodes")
    .requiredOption("-q, --queue <queue>", "batch queue")
    .requiredOption("-t, --time-minutes <minutes>", "wall time of the allocation")
    .requiredOption("-A, --project <project>", "project / account to charge")
    .requiredOption("--job-mode <mode>", "serial or mpi")
    .option("--wf-filter <wf>", "only run jobs of this workflow")
    .option("--sched-flags <flags>", "extra flags for the scheduler's submit command")
    .action(
      action(() => {
        throw new BalsamError("RUNTIME", "submit-launch is not implemented yet", { hint: "run `balsam launcher` inside an allocation instead" });
      }),
    );
}
