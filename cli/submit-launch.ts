import type { Command } from "commander";
import type { SubmitLaunchOptions } from "../services/service/index.js";
import { action, openClient, out } from "./common.js";

interface SubmitLaunchFlags {
  nodes: string;
  queue: string;
  timeMinutes: string;
  project: string;
  jobMode: string;
  wfFilter?: string;
  schedFlags?: string;
  tag?: string[];
}

export function register(program: Command): Command {
  return program
    .command("submit-launch")
    .description("Submit a launcher job to the batch queue")
    .requiredOption("-n, --nodes <n>", "number of nodes")
    .requiredOption("-q, --queue <queue>", "batch queue")
    .requiredOption("-t, --time-minutes <minutes>", "wall time of the allocation")
    .requiredOption("-A, --project <project>", "project / account to charge")
    .requiredOption("--job-mode <mode>", "serial or mpi")
    .option("--wf-filter <part>", "its launcher runs jobs of workflows whose name contains PART, as `launcher --wf-filter` (comma-separated for several); default: every workflow")
    .option("--sched-flags <flags>", "extra flags for the scheduler's submit command")
    .option("--tag <KEY=VALUE>", "the launcher runs only jobs with this tag (repeatable: all must match)", (w: string, prev: string[] | undefined) => [...(prev ?? []), w])
    .action(
      action(async (f: SubmitLaunchFlags) => {
        const { readSettings, resolveDbPath } = await import("../libs/config/index.js");
        const { findOnPath, resolveScheduler, resolveSubmitLaunchOptions, submitLaunch } = await import("../services/service/index.js");
        const o: SubmitLaunchOptions = { nodes: f.nodes, queue: f.queue, minutes: f.timeMinutes, project: f.project, jobMode: f.jobMode, wfFilter: f.wfFilter, schedFlags: f.schedFlags, tags: f.tag };
        const resolved = resolveSubmitLaunchOptions(o);
        const dbPath = resolveDbPath();
        const scheduler = resolveScheduler(readSettings(dbPath));
        // The default scheduler runs the launcher here: on a cluster's login node that is not what `-q` asked for.
        const batch = scheduler.name === "local" ? ["sbatch", "qsub", "bsub"].find((c) => findOnPath(c)) : undefined;
        if (batch) {
          process.stderr.write(
            `balsam: warning: this database's scheduler is local: the launcher runs on this machine, not in queue ${f.queue}; this machine has ${batch}: set "scheduler" in ${dbPath}/settings.json (slurm, cobalt, pbs or lsf) or BALSAM_SCHEDULER to submit to it\n`,
          );
        }
        const client = await openClient();
        try {
          const doc = await submitLaunch(client, scheduler, resolved, { dbPath });
          process.stderr.write(`balsam: submitted to ${doc.scheduler} as ${doc.schedulerId}: ${doc.nodes} node(s), ${doc.wallTimeMinutes} min, script ${doc.scriptPath}\n`);
          out(doc._id);
        } finally {
          await client.close();
        }
      }),
    );
}
