import { cpus, hostname } from "node:os";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { UsageError } from "../../libs/errors/index.js";
import { resolveMaxLeaseLapses } from "../../libs/config/index.js";
import { isValidWorkflow } from "../../libs/queue/index.js";
import { deviceVariable, detectMpiKind, discoverGpus, discoverNodes, remainingMinutesFromEnv, sliceNodes, type GpuVendor, type MpiKind, type NodeGpus, type NodeInfo } from "../../libs/platform/index.js";
import type { Settings } from "../../libs/config/index.js";
import { parseTags, type Tags } from "../../libs/models/index.js";
import type { Balsam } from "../../libs/client/index.js";
import { Launcher, type LauncherSummary } from "./launcher.js";
import { SCRIPT_LIMIT_MS, STOP_GRACE_MS } from "./options.js";

export { Launcher, STOP_GRACE_MS };
export type { LauncherSummary };

/** What `balsam launcher` is given on its command line. */
export interface LauncherCliOptions {
  consumeAll?: boolean;
  /** Comma-separated parts: workflows whose name contains one of them. */
  wfFilter?: string;
  /** Comma-separated exact workflow names. */
  wfExact?: string;
  jobMode: string;
  timeLimitMinutes?: number;
  gpusPerNode?: number;
  /** nvidia or intel; default: the settings', else from how the GPUs were found. */
  gpuVendor?: string;
  limitNodes?: number;
  offsetNodes?: number;
  persistent?: boolean;
  /** Repeated `--tag KEY=VALUE` words. */
  tag?: string[];
}

export interface ResolvedLauncherOptions {
  jobMode: "serial" | "mpi";
  workflows: string[] | undefined;
  workflowParts: string[] | undefined;
  nodes: NodeInfo[];
  scheduler: string;
  /** Each node's GPUs (the launcher's own node's, taken for all), and where they were found. */
  gpus: NodeGpus;
  /** The site's GPUs per node, from the settings: jobs needing more are failed. */
  maxGpusPerNode: number | undefined;
  timeLimitMinutes: number | undefined;
  persistent: boolean;
  /** Only jobs with all these tags; undefined: any job. */
  tags: Tags | undefined;
}

/** Validates the flags and reads the allocation from the batch environment. */
export function resolveLauncherOptions(o: LauncherCliOptions, env: NodeJS.ProcessEnv = process.env, settings?: Pick<Settings, "gpusPerNode" | "gpuVendor">, nvidiaSmi: () => string | undefined = runNvidiaSmi): ResolvedLauncherOptions {
  if (o.jobMode !== "serial" && o.jobMode !== "mpi") throw new UsageError(`--job-mode must be serial or mpi, not '${o.jobMode}'`);
  if ([o.consumeAll, o.wfFilter, o.wfExact].filter(Boolean).length !== 1) throw new UsageError("give exactly one of --consume-all, --wf-filter PART[,PART...] and --wf-exact WF[,WF...]");
  const list = (v: string | undefined) => (v ? v.split(",").map((s) => s.trim()).filter(Boolean) : undefined);
  const workflows = list(o.wfExact);
  const workflowParts = list(o.wfFilter);
  for (const wf of [...(workflows ?? []), ...(workflowParts ?? [])]) {
    if (!isValidWorkflow(wf)) throw new UsageError(`'${wf}' is not a valid workflow name`, { hint: "use letters, digits, '_', '.' or '-'" });
  }
  const tags: Tags | undefined = parseTags(o.tag);
  if (o.timeLimitMinutes !== undefined && !(o.timeLimitMinutes > 0)) throw new UsageError("--time-limit-minutes must be > 0");
  const vendor = o.gpuVendor ?? env.BALSAM_GPU_VENDOR?.trim() ?? settings?.gpuVendor;
  if (vendor !== undefined && vendor !== "" && vendor !== "nvidia" && vendor !== "intel" && vendor !== "auto") {
    throw new UsageError(`${o.gpuVendor !== undefined ? "--gpu-vendor" : "BALSAM_GPU_VENDOR"} must be nvidia or intel, not '${vendor}'`);
  }
  const gpus = discoverGpus(env, { flag: o.gpusPerNode, settings: settings?.gpusPerNode, vendor: (vendor || undefined) as GpuVendor | "auto" | undefined, nvidiaSmi });
  const found = discoverNodes(env, {
    readFile: (p) => readFileSync(p, "utf8"),
    localHost: hostname(),
    localCores: cpus().length,
    gpusPerNode: gpus.ids.length,
  });
  found.nodes = found.nodes.map((n) => ({ ...n, gpuIds: gpus.ids }));
  let nodes: NodeInfo[];
  try {
    nodes = sliceNodes(found.nodes, o.limitNodes, o.offsetNodes);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  // Serial jobs start on this node; a scheduler's other nodes get their own launchers (one per node).
  if (o.jobMode === "serial" && found.scheduler !== "override" && found.scheduler !== "local") {
    const here = hostname().split(".")[0]!;
    const mine = nodes.filter((n) => n.host.split(".")[0] === here);
    nodes = mine.length ? mine : nodes.slice(0, 1);
  }
  const fromScheduler = remainingMinutesFromEnv(env, new Date());
  return {
    jobMode: o.jobMode,
    workflows,
    workflowParts,
    nodes,
    scheduler: found.scheduler,
    gpus,
    maxGpusPerNode: settings?.gpusPerNode,
    timeLimitMinutes: o.timeLimitMinutes ?? fromScheduler,
    persistent: Boolean(o.persistent),
    tags,
  };
}

/**
 * `nvidia-smi -L`, or undefined where it cannot run (no NVIDIA driver here).
 * Bounded: a wedged driver can hang nvidia-smi, and a launcher must start.
 */
function runNvidiaSmi(): string | undefined {
  try {
    return execFileSync("nvidia-smi", ["-L"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 15_000 });
  } catch {
    return undefined;
  }
}

/** `mpirun --version` decides the MPI flavour unless the settings name one. */
export function resolveMpiKind(setting: string | undefined): MpiKind {
  if (setting && setting !== "auto") return setting as MpiKind;
  for (const cmd of ["mpirun", "mpiexec"]) {
    try {
      const out = execFileSync(cmd, ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 });
      const kind = detectMpiKind(out);
      if (kind) return kind;
    } catch {
      // try the next one
    }
  }
  return "openmpi";
}

export async function runLauncher(client: Balsam, dbPath: string, o: ResolvedLauncherOptions, extra: { leaseTtlMs?: number; killGraceMs?: number; stopGraceMs?: number; claimAfterMs?: number; writeBacklog?: number; log?: (l: string) => void } = {}): Promise<LauncherSummary> {
  const launcher = new Launcher({
    client,
    dbPath,
    jobMode: o.jobMode,
    workflows: o.workflows,
    workflowParts: o.workflowParts,
    nodes: o.nodes,
    timeLimitMinutes: o.timeLimitMinutes,
    persistent: o.persistent,
    tags: o.tags,
    leaseTtlMs: extra.leaseTtlMs ?? client.settings?.leaseTtlMs,
    maxLeaseLapses: resolveMaxLeaseLapses(client.settings),
    killGraceMs: extra.killGraceMs,
    claimAfterMs: extra.claimAfterMs,
    writeBacklog: extra.writeBacklog,
    mpiKind: o.jobMode === "mpi" ? resolveMpiKind(client.settings?.mpi) : undefined,
    gpuVendor: o.gpus.vendor,
    maxGpusPerNode: o.maxGpusPerNode,
    log: extra.log,
    // Its running jobs' timeout handlers may take their whole limit (SCRIPT_LIMIT_MS) once it stops on its own.
    onStop: (reason: string, running: boolean) => bound(`it began to stop (${reason})`, stopGraceMs + (running ? SCRIPT_LIMIT_MS : 0)),
  } as ConstructorParameters<typeof Launcher>[0]);
  // A signal asks for a clean stop, which writes the running jobs' states.
  // With the servers gone (or hung) that write never ends, and a batch
  // system's SIGTERM must still end the launcher: after the grace it exits
  // without them. Its jobs' processes die with it (the watchdog) and their
  // leases lapse, so another launcher or `balsam service` recovers them.
  const stopGraceMs = extra.stopGraceMs ?? STOP_GRACE_MS;
  const say = extra.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const g = o.gpus;
  if (g.source !== "none") say(`GPUs on each node: ${g.ids.length ? g.ids.join(",") : "none"} (from ${g.source === "flag" ? "--gpus-per-node" : g.source === "env" ? "BALSAM_GPUS_PER_NODE" : g.source === "settings" ? "the settings' gpusPerNode" : g.source}), handed to jobs in ${deviceVariable(g.vendor)}`);
  let forced: NodeJS.Timeout | undefined;
  // Whatever asked for the stop (a signal, the time limit, nothing left to run): a stop whose writes never end
  // (a server gone or hung mid-stop) would keep the allocation for ever.
  function bound(after: string, ms: number): void {
    forced ??= setTimeout(() => {
      process.stderr.write(`balsam launcher: not stopped ${ms} ms after ${after} (servers not answering?); exiting, leases will lapse and the jobs be recovered\n`);
      process.exit(1);
    }, ms);
    forced.unref();
  }
  const onSignal = (sig: string) => {
    bound(sig, stopGraceMs);
    launcher.stop(`received ${sig}`);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    return await launcher.run();
  } finally {
    if (forced) clearTimeout(forced);
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}
