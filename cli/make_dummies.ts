import type { Command } from "commander";
import type { JobSpec } from "../libs/client/index.js";
import { action, intOption, out, withClient } from "./common.js";
import { parseWorkflow } from "./format.js";

/**
 * Jobs per addMany: one insertMany and one addBulk round of 10k documents
 * keeps memory flat for a million jobs while the per-call overhead stays
 * negligible next to the write itself.
 */
const CHUNK = 10_000;

function* dummyChunks(num: number, workflow: string): Generator<JobSpec[]> {
  for (let start = 0; start < num; start += CHUNK) {
    const specs: JobSpec[] = [];
    for (let i = start; i < Math.min(num, start + CHUNK); i++) specs.push({ name: `dummy${i}`, workflow, application: "dummy" });
    yield specs;
  }
}

export function register(program: Command): Command {
  return program
    .command("make_dummies")
    .description("Add dummy jobs to the DB")
    .argument("<num>", "how many dummy jobs", intOption("num", 1))
    .option("--wf <workflow>", "workflow of the dummy jobs", "dummy")
    .action(
      action(async (num: number, o: { wf: string }) => {
        const workflow = parseWorkflow(o.wf) as string;
        const { SingleBar, Presets } = await import("cli-progress");
        await withClient(async (b) => {
          const madeApp = !(await b.apps.find("dummy"));
          if (madeApp) await b.apps.add({ name: "dummy", executable: "/bin/true", description: "does nothing; used by make_dummies" });
          const bar = process.stderr.isTTY ? new SingleBar({ stream: process.stderr }, Presets.shades_classic) : undefined;
          bar?.start(num, 0);
          try {
            await b.jobs.addChunks(dummyChunks(num, workflow), (added) => bar?.update(added));
          } catch (err) {
            // A failed command changes nothing: the app goes too, unless another command's jobs use it meanwhile.
            if (madeApp) {
              const unused = async () => (await b.jobs.filter({ application: "dummy" }).count()) === 0;
              await unused()
                .then(async (yes) => (yes ? b.apps.deleteNames(["dummy"]) : 0))
                .catch(() => 0); // the add's error is the one to report
            }
            throw err;
          } finally {
            bar?.stop();
          }
        });
        out(`added ${num} dummy job(s) to workflow ${workflow}`);
      }),
    );
}
