import { DEFAULT_MAX_LEASE_LAPSES } from "../../libs/config/index.js";
import { CHUNK_SIZE, type Balsam } from "../../libs/client/index.js";
import type { GpuVendor, MpiKind, NodeInfo } from "../../libs/platform/index.js";
import type { Tags } from "../../libs/models/index.js";

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
/** A pre/postprocess script or handler is killed after this. */
export const SCRIPT_LIMIT_MS = 5 * MINUTE;
/** How long a stopping launcher may take before it exits regardless (BALSAM_STOP_GRACE_MS overrides). */
export const STOP_GRACE_MS = 30 * SECOND;

/** What a launcher is built from (services/launcher/index.ts turns `balsam launcher`'s flags into these). */
export interface LauncherOptions {
  client: Balsam;
  /** Database directory: working directories live under its data/. */
  dbPath: string;
  jobMode: "serial" | "mpi";
  /** Workflows to consume; undefined = all, discovering new ones as they appear. */
  workflows?: string[];
  /**
   * With `workflows` undefined: consume only workflows whose name contains
   * one of these parts (0.x's `--wf-filter`, `workflow__contains`),
   * discovering new ones as they appear.
   */
  workflowParts?: string[];
  nodes: NodeInfo[];
  /** Minutes until this launcher must stop; undefined = no limit. */
  timeLimitMinutes?: number;
  /** Keep running when there is nothing left to do. Default false. */
  persistent?: boolean;
  /** Lease length; renewed every third of it. Default 180 000. */
  leaseTtlMs?: number;
  /** Time between SIGTERM and SIGKILL when stopping a job. Default 5000. */
  killGraceMs?: number;
  /** MPI implementation for mpi mode. Default openmpi. */
  mpiKind?: MpiKind;
  /** Which variable hands a job its GPUs (libs/platform/gpus.ts). Default nvidia. */
  gpuVendor?: GpuVendor;
  /** The site's GPUs per node (settings `gpusPerNode`): a job needing more is failed, not left for another launcher. */
  maxGpusPerNode?: number;
  /** Run only jobs carrying all these tags (`--tag`); others stay in the queue for other launchers (tag-filter.ts). */
  tags?: Tags;
  /** How often an idle launcher checks whether anything is left. Default 500. */
  idleCheckMs?: number;
  /** The lease lapse that reaches this count fails a job instead of restarting it. Default DEFAULT_MAX_LEASE_LAPSES. */
  maxLeaseLapses?: number;
  /**
   * How long a job may run before it is recorded RUNNING under a lease; one
   * that ends sooner is recorded in one write. 0 claims every job before it
   * starts. Default 1000; at most a third of the queue entry's lock.
   */
  claimAfterMs?: number;
  /**
   * State writes that may wait for the database before the launcher starts
   * no new job. Default 500: one bulk's worth.
   */
  writeBacklog?: number;
  /**
   * How long a job in hand waits for one of this launcher's slots before its
   * entry goes back to the head of the queue, for a launcher with room (and
   * this one fetches nothing until a slot frees). Default 5000: a slot that
   * short jobs free within milliseconds never gets there.
   */
  slotWaitMs?: number;
  /** Default: standard error. */
  log?: (line: string) => void;
  /** Told once, when the launcher begins to stop, whatever asked it to, and whether jobs were running then (runLauncher bounds the stop from there). */
  onStop?: (reason: string, running: boolean) => void;
}

/** The options with every default filled in, and what follows from them. */
export interface ResolvedOptions extends Required<Omit<LauncherOptions, "workflows" | "workflowParts" | "timeLimitMinutes" | "maxGpusPerNode" | "tags" | "onStop">> {
  workflows: string[] | undefined;
  workflowParts: string[] | undefined;
  timeLimitMinutes: number | undefined;
  maxGpusPerNode: number | undefined;
  /** Undefined (never empty): any job. */
  tags: Tags | undefined;
  /** A dead launcher's queue entries come back after this. */
  lockDurationMs: number;
  /** Queue entries each worker holds while no job runs ahead of its claim. */
  baseConcurrency: number;
  /** SIGTERM this long before a job's fence deadline. */
  termLeadMs: number;
}

export function resolveOptions(opts: LauncherOptions): ResolvedOptions {
  if (opts.nodes.length === 0) throw new Error("a launcher needs at least one node");
  const leaseTtlMs = opts.leaseTtlMs ?? 180 * SECOND;
  const killGraceMs = opts.killGraceMs ?? 5 * SECOND;
  const jobMode = opts.jobMode;
  // No longer than its leases: a job running ahead of its claim is protected by the lock alone.
  const lockDurationMs = Math.min(30 * SECOND, leaseTtlMs);
  return {
    client: opts.client,
    dbPath: opts.dbPath,
    jobMode,
    workflows: opts.workflows,
    workflowParts: opts.workflowParts,
    nodes: opts.nodes,
    timeLimitMinutes: opts.timeLimitMinutes,
    persistent: opts.persistent ?? false,
    leaseTtlMs,
    killGraceMs,
    mpiKind: opts.mpiKind ?? "openmpi",
    gpuVendor: opts.gpuVendor ?? "nvidia",
    maxGpusPerNode: opts.maxGpusPerNode,
    tags: opts.tags && Object.keys(opts.tags).length > 0 ? opts.tags : undefined,
    idleCheckMs: opts.idleCheckMs ?? 500,
    maxLeaseLapses: opts.maxLeaseLapses ?? DEFAULT_MAX_LEASE_LAPSES,
    // A third of the lock: the claim is written well before the lock needs its first extension.
    claimAfterMs: Math.min(opts.claimAfterMs ?? SECOND, Math.floor(lockDurationMs / 3)),
    writeBacklog: opts.writeBacklog ?? 500,
    slotWaitMs: opts.slotWaitMs ?? 5 * SECOND,
    log: opts.log ?? ((l: string) => void process.stderr.write(l + "\n")),
    lockDurationMs,
    // Enough waiting jobs to fill every slot once more, no more: the rest stay for other launchers. At least a
    // chunk's worth, so the next chunk is fetched while the one in hand still has jobs waiting: with 4 (2 cores,
    // no-op jobs packed 4 to a node) the slots stood empty 5% of the time between chunks, 1% with 8 (+9% jobs/s).
    baseConcurrency: jobMode === "mpi" ? opts.nodes.length : Math.max(CHUNK_SIZE, opts.nodes.reduce((a, n) => a + Math.max(1, n.cores), 0) * 2),
    termLeadMs: Math.min(killGraceMs, Math.floor(leaseTtlMs / 8)),
  };
}
