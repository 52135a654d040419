import type { Command } from "commander";
import { action, out, withClient } from "./common.js";

/**
 * Balsam 0.x's `bcd ID`: a command cannot change its shell's directory, so
 * this prints the job's working directory for `cd "$(balsam cd ID)"`.
 */
export function register(program: Command): Command {
  return program
    .command("cd")
    .description("print a job's working directory: cd \"$(balsam cd ID)\"")
    .argument("<id>", "job id or unique prefix")
    .action(
      action(async (id: string) => {
        const { workdirFor } = await import("../libs/client/workdir.js");
        const dir = await withClient(async (b) => {
          const job = await b.jobs.get(id);
          return job.workdir || workdirFor(b.dbPath as string, job);
        }, { readOnly: true });
        out(dir);
      }),
    );
}
