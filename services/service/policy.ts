/**
 * The service's submission policy: whether to ask for an allocation now, and
 * how many nodes. Pure, so every branch is a unit test.
 */
import type { ServicePolicy } from "../../libs/config/index.js";

/** Runnable jobs of one shape: how many nodes each needs and how many share a node. */
export interface WorkBucket {
  numNodes: number;
  nodePackingCount: number;
  /** GPUs each job takes on a node (gpus_per_rank; a serial job has one rank). */
  gpusPerRank?: number;
  count: number;
}

export interface PolicyInput {
  policy: ServicePolicy;
  /** Runnable jobs (of the policy's workflows) short enough for a launcher of the policy's wall time. */
  runnable: readonly WorkBucket[];
  /** Runnable jobs longer than a launcher of the policy's wall time would run. */
  tooLong: number;
  /** The settings' gpusPerNode: a serial job's GPUs take their share of a node too. Unknown: only CPU shares count. */
  gpusPerNode?: number;
  /** Launches queued, running or of unknown state. */
  inFlight: ReadonlyArray<{ state: string; nodes: number }>;
}

export type PolicyDecision = { submit: true; nodes: number; reason: string } | { submit: false; reason: string };

const EPS = 1e-9;

export function decideLaunch(input: PolicyInput): PolicyDecision {
  const { policy } = input;
  if (!policy.autoSubmit) return { submit: false, reason: "auto-submission is off (settings service.autoSubmit)" };
  const unfit: string[] = [];
  if (input.tooLong > 0) unfit.push(`${input.tooLong} runnable job(s) need more than the policy's ${policy.wallTimeMinutes} min`);
  const serial = policy.jobMode === "serial";
  const usable = input.runnable.filter((b) => (serial ? b.numNodes <= 1 : b.numNodes <= policy.maxNodes));
  const unusable = input.runnable.filter((b) => !usable.includes(b)).reduce((n, b) => n + b.count, 0);
  if (unusable > 0) {
    unfit.push(serial ? `${unusable} runnable MPI job(s) need an mpi-mode policy` : `${unusable} runnable job(s) need more than maxNodes ${policy.maxNodes}`);
  }
  const note = unfit.length ? ` (${unfit.join("; ")})` : "";
  const inFlight = input.inFlight.length;
  if (inFlight >= policy.maxQueuedLaunches) {
    return { submit: false, reason: `${inFlight} launch(es) queued or running, the most the policy allows (maxQueuedLaunches ${policy.maxQueuedLaunches})${note}` };
  }
  const jobs = usable.reduce((n, b) => n + b.count, 0);
  if (jobs === 0 || jobs < policy.minRunnableJobs) {
    return { submit: false, reason: `${jobs} runnable job(s), fewer than minRunnableJobs ${policy.minRunnableJobs}${note}` };
  }
  // Serial: jobs share a node by 1/node_packing_count each, or by their GPUs' share when that is
  // larger (packing 8 with 1 GPU of 4 runs 4 a node, as the launcher grants them); MPI: whole nodes each.
  const g = input.gpusPerNode;
  const share = (b: WorkBucket) => Math.max(1 / Math.max(1, b.nodePackingCount), g ? (b.gpusPerRank ?? 0) / g : 0);
  const workNodes = serial
    ? Math.ceil(usable.reduce((n, b) => n + b.count * share(b), 0) - EPS)
    : usable.reduce((n, b) => n + b.count * Math.max(1, b.numNodes), 0);
  // A queued allocation will take on this work when it starts; a running one is already on it.
  const queuedNodes = input.inFlight.filter((l) => l.state === "queued").reduce((n, l) => n + l.nodes, 0);
  const needed = workNodes - queuedNodes;
  if (needed <= 0) {
    return { submit: false, reason: `${jobs} runnable job(s) need ${workNodes} node(s), already queued: ${queuedNodes}${note}` };
  }
  let nodes = Math.min(policy.maxNodes, needed);
  if (!serial) {
    // The largest job must fit, or the allocation could never run it.
    const largest = Math.max(...usable.map((b) => b.numNodes));
    nodes = Math.max(nodes, Math.min(largest, policy.maxNodes));
  }
  return {
    submit: true,
    nodes,
    reason: `${jobs} runnable job(s) need ${workNodes} node(s), ${queuedNodes} already queued: submitting ${nodes} node(s) for ${policy.wallTimeMinutes} min${note}`,
  };
}
