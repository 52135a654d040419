import { Option, type Command } from "commander";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import type { LauncherCliOptions } from "../services/launcher/index.js";
import { action, intOption, openClient } from "./common.js";
import { UsageError } from "../libs/errors/index.js";

function minutes(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--time-limit-minutes must be a number > 0, not '${v}'`);
  return n;
}

export function register(program: Command): Command {
  return program
    .command("launcher")
    .description("Start a local instance of the balsam launcher")
    .option("--consume-all", "run jobs of every workflow, discovering new ones")
    .option("--wf-filter <part>", "run jobs of workflows whose name contains PART (as 0.x's workflow__contains; comma-separated for several), discovering new ones")
    .option("--wf-exact <wf>", "run jobs of exactly these workflows (comma-separated)")
    .requiredOption("--job-mode <mode>", "serial (many single-process jobs per node) or mpi (multi-node jobs)")
    .option("--time-limit-minutes <t>", "stop after this many minutes (default: the allocation's remaining time)", minutes)
    .option("--num-transition-threads <n>", "accepted for compatibility; state writes are batched instead", intOption("--num-transition-threads", 1))
    .option("--gpus-per-node <g>", "GPUs on each node, overriding BALSAM_GPUS_PER_NODE, the settings' gpusPerNode and discovery (nvidia-smi -L, CUDA_VISIBLE_DEVICES, ZE_AFFINITY_MASK); 0: none", intOption("--gpus-per-node", 0, 1024))
    .addOption(new Option("--gpu-vendor <vendor>", "hand jobs their GPUs in CUDA_VISIBLE_DEVICES (nvidia) or ZE_AFFINITY_MASK (intel); default: BALSAM_GPU_VENDOR, the settings' gpuVendor, else from how the GPUs were found").choices(["nvidia", "intel"]))
    .option("--limit-nodes <n>", "use at most N of the allocation's nodes", intOption("--limit-nodes", 1))
    .option("--offset-nodes <k>", "skip the first K nodes of the allocation", intOption("--offset-nodes", 0))
    .option("--persistent", "keep running when nothing is left to do")
    .option("--tag <KEY=VALUE>", "run only jobs with this tag (repeatable: all must match); other jobs stay queued for other launchers", (w: string, prev: string[] | undefined) => [...(prev ?? []), w])
    .action(
      action(async (o: LauncherCliOptions) => {
        const { launcherEnv, readSettings, resolveDbPath } = await import("../libs/config/index.js");
        const { resolveLauncherOptions, runLauncher, STOP_GRACE_MS } = await import("../services/launcher/index.js");
        // Only the GPU settings, read ahead of the client: a database that cannot be read is reported by openClient below.
        let settings: ReturnType<typeof readSettings> | undefined;
        try {
          settings = readSettings(resolveDbPath());
        } catch {
          settings = undefined;
        }
        const resolved = resolveLauncherOptions(o, process.env, settings);
        const env = launcherEnv();
        const dbPath = resolveDbPath();
        const client = await openClient();
        const logFile = join(dbPath, "log", "launcher.log");
        const log = (line: string) => {
          const stamped = `${new Date().toISOString()} ${line}`;
          process.stderr.write(stamped + "\n");
          try {
            appendFileSync(logFile, stamped + "\n");
          } catch {
            // the log directory is optional for databases made by hand
          }
        };
        try {
          await runLauncher(client, dbPath, resolved, { ...env, log });
        } finally {
          // Stopped: every state is written. A connection that does not let go (a Redis Cluster node lost
          // mid-run kept one launcher alive for minutes after its stop line, seen in CI) must not keep the
          // allocation: unref'd, this fires only when something else holds the process open.
          const grace = env.stopGraceMs ?? STOP_GRACE_MS;
          setTimeout(() => {
            log(`exiting: ${grace} ms after the launcher stopped, its server connections are still open (a server not answering?)`);
            process.exit(process.exitCode ?? 0);
          }, grace).unref();
          await client.close();
        }
      }),
    );
}
