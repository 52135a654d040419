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
    .action(action(async (id: string) => out(await jobWorkdir(id))));
}

/** The directory the job recorded, else the one it will run in. */
async function jobWorkdir(id: string): Promise<string> {
  const { workdirFor } = await import("../libs/client/workdir.js");
  return withClient(
    async (b) => {
      const job = await b.jobs.get(id);
      return job.workdir || workdirFor(b.dbPath as string, job);
    },
    { readOnly: true },
  );
}
