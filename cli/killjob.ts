import type { Command } from "commander";
import { action, out, withClient } from "./common.js";
import { note } from "./format.js";

export function register(program: Command): Command {
  return program
    .command("killjob")
    .description("Kill a job without removing it from the DB")
    .requiredOption("--id <id>", "job id or unique prefix")
    .option("--recursive", "also kill every job that depends on it, directly or not")
    .action(
      action(async (o: { id: string; recursive?: boolean }) => {
        const killed = await withClient((b) => b.jobs.kill(o.id, { recursive: o.recursive === true }));
        if (killed.length === 0) note("nothing to kill: every job was already in a final state");
        for (const id of killed) out(id);
      }),
    );
}
