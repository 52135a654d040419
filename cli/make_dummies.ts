import type { Command } from "commander";
import { SingleBar, Presets } from "cli-progress";
import type { JobSpec } from "../libs/client/index.js";
import { action, intOption, out, withClient } from "./common.js";
import { parseWorkflow } from "./format.js";

/**
 * Jobs per addMany: one insertMany and one addBulk round of 10k documents
 * keeps memory flat for a million jobs while the per-call overhead stays
 * negligible next to the write itself.
 */
const CHUNK = 10_000;

export function register(program: Command): Command {
  return program
    .command("make_dummies")
    .description("Add dummy jobs to the DB")
    .argument("<num>", "how many dummy jobs", intOption("num", 1))
    .option("--wf <workflow>", "workflow of the dummy jobs", "dummy")
    .action(
      action(async (num: number, o: { wf: string }) => {
        const workflow = parseWorkflow(o.wf) as string;
        await withClient(async (b) => {
          if (!(await b.apps.find("dummy"))) {
            await b.apps.add({ name: "dummy", executable: "/bin/true", description: "does nothing; used by make_dummies" });
          }
          const bar = process.stderr.isTTY ? new SingleBar({ stream: process.stderr }, Presets.shades_classic) : undefined;
          bar?.start(num, 0);
          try {
            for (let start = 0; start < num; start += CHUNK) {
              const specs: JobSpec[] = [];
              for (let i = start; i < Math.min(num, start + CHUNK); i++) specs.push({ name: `dummy${i}`, workflow, application: "dummy" });
              await b.jobs.addMany(specs);
              bar?.update(start + specs.length);
            }
          } finally {
            bar?.stop();
          }
        });
        out(`added ${num} dummy job(s) to workflow ${workflow}`);
      }),
    );
}
