import type { Command } from "commander";
import { UsageError } from "../libs/errors/index.js";
import { action, out, withClient } from "./common.js";
import { collectTag, note, parseState, parseTagWords, parseWorkflow, preview } from "./format.js";

interface KillOptions {
  id?: string;
  tag?: string[];
  wf?: string;
  state?: string;
  recursive?: boolean;
}

export function register(program: Command): Command {
  return program
    .command("killjob")
    .description("Kill a job without removing it from the DB")
    .option("--id <id>", "job id or unique prefix")
    .option("--tag <KEY=VALUE>", "instead of --id: every job not yet final with this tag (repeatable: all must match)", collectTag)
    .option("--wf <workflow>", "with --tag: only jobs of this workflow")
    .option("--state <state>", "with --tag: only jobs in this state")
    .option("--recursive", "also kill every job that depends on it, directly or not")
    .action(
      action(async (o: KillOptions) => {
        const tags = parseTagWords(o.tag);
        const workflow = parseWorkflow(o.wf);
        const state = parseState(o.state);
        if (o.id !== undefined && (tags || workflow || state)) throw new UsageError("give either --id or selectors (--tag, with --wf/--state), not both");
        if (o.id === undefined && !tags) throw new UsageError("killjob needs --id ID or --tag KEY=VALUE");
        if (o.id !== undefined) {
          const id = o.id;
          const killed = await withClient((b) => b.jobs.kill(id, { recursive: o.recursive === true }));
          if (killed.length === 0) note("nothing to kill: every job was already in a final state");
          for (const k of killed) out(k);
          return;
        }
        const { killWhere } = await import("../libs/client/by-filter.js");
        const r = await withClient((b) => killWhere(b.jobs, { tags, workflow, state }, { recursive: o.recursive === true }));
        if (r.done.length === 0 && r.refused.length === 0) note("nothing to kill: no matching job is still to finish");
        for (const k of r.done) out(k);
        if (r.refused.length) {
          note(`${r.refused.length} job(s) not killed: ${preview(r.refused.map((x) => `${x.id} (${x.reason})`), 3)}`);
          process.exitCode = 1;
        }
      }),
    );
}
