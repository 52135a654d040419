import type { Command } from "commander";
import type { JobSpec } from "../libs/client/index.js";
import { action, intOption, out, withClient } from "./common.js";
import { collectTag, parseTagWords, parseWorkflow } from "./format.js";
import { EXIT_INTERRUPTED, withProgress } from "./progress.js";

/**
 * Jobs per addMany: one insertMany and one addBulk round of 10k documents
 * keeps memory flat for a million jobs while the per-call overhead stays
 * negligible next to the write itself.
 */
const CHUNK = 10_000;

/** Chunks of dummy specs; a stop (Ctrl-C) is heeded between chunks, so every job added has its queue entry. */
function* dummyChunks(num: number, workflow: string, signal: AbortSignal, tags: Record<string, string> | undefined): Generator<JobSpec[]> {
  for (let start = 0; start < num && !signal.aborted; start += CHUNK) {
    const specs: JobSpec[] = [];
    for (let i = start; i < Math.min(num, start + CHUNK); i++) specs.push({ name: `dummy${i}`, workflow, application: "dummy", ...(tags ? { tags } : {}) });
    yield specs;
  }
}

export function register(program: Command): Command {
  return program
    .command("make_dummies")
    .description("Add dummy jobs to the DB")
    .argument("<num>", "how many dummy jobs", intOption("num", 1))
    .option("--wf <workflow>", "workflow of the dummy jobs", "dummy")
    .option("--tag <KEY=VALUE>", "a tag on every dummy job (repeatable)", collectTag)
    .action(
      action(async (num: number, o: { wf: string; tag?: string[] }) => {
        const workflow = parseWorkflow(o.wf) as string;
        const tags = parseTagWords(o.tag);
        await withClient(async (b) => {
          const madeApp = !(await b.apps.find("dummy"));
          if (madeApp) await b.apps.add({ name: "dummy", executable: "/bin/true", description: "does nothing; used by make_dummies" });
          try {
            const { result: added, interrupted } = await withProgress((p) => {
              p.onProgress(0, num);
              return b.jobs.addChunks(dummyChunks(num, workflow, p.signal, tags), (n) => p.onProgress(n, num));
            });
            if (interrupted) {
              out(`interrupted: added ${added} of ${num} dummy job(s) to workflow ${workflow}`);
              process.exitCode = EXIT_INTERRUPTED;
            }
          } catch (err) {
            // A failed command changes nothing: the app goes too, unless another command's jobs use it meanwhile.
            if (madeApp) {
              const unused = async () => (await b.jobs.filter({ application: "dummy" }).count()) === 0;
              await unused()
                .then(async (yes) => (yes ? b.apps.deleteNames(["dummy"]) : 0))
                .catch(() => 0); // the add's error is the one to report
            }
            throw err;
          }
        });
        if (process.exitCode !== EXIT_INTERRUPTED) out(`added ${num} dummy job(s) to workflow ${workflow}`);
      }),
    );
}
