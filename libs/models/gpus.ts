import type { Job } from "./job.js";

/**
 * GPUs a job takes on each of its nodes: `gpus_per_rank × ranks_per_node`,
 * as Balsam 2's node manager counts them. A document written before the
 * field existed has none.
 */
export function gpusPerNodeOf(job: Pick<Job, "ranksPerNode"> & { gpusPerRank?: number }): number {
  return (job.gpusPerRank ?? 0) * job.ranksPerNode;
}

/**
 * Why a job can never run on a node with `maxGpusPerNode` GPUs (the
 * settings' `gpusPerNode`), as one line; undefined when it fits or the
 * limit is unknown. Job creation, `modify` and launchers say the same words.
 */
export function gpuLimitProblem(job: Pick<Job, "ranksPerNode"> & { gpusPerRank?: number }, maxGpusPerNode: number | undefined): string | undefined {
  if (maxGpusPerNode === undefined) return undefined;
  const need = gpusPerNodeOf(job);
  if (need <= maxGpusPerNode) return undefined;
  const how = job.ranksPerNode > 1 ? `gpus_per_rank ${job.gpusPerRank ?? 0} × ranks_per_node ${job.ranksPerNode} = ${need}` : `gpus_per_rank ${need}`;
  return `the job needs ${how} GPUs per node, but this site's nodes have ${maxGpusPerNode} (settings gpusPerNode)`;
}
