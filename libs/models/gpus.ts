import { UsageError } from "../errors/index.js";
import type { Job } from "./job.js";

/** What the database's settings say every job must fit. */
export interface JobLimits {
  /** The site's GPUs per node (settings `gpusPerNode`): a job needing more on one node is refused. */
  maxGpusPerNode?: number;
}

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
  const how = job.ranksPerNode > 1 ? `gpus_per_rank ${job.gpusPerRank ?? 0} × ranks_per_node ${job.ranksPerNode}` : `gpus_per_rank ${need}`;
  return `the job needs ${need} GPUs per node (${how}), but this site's nodes have ${maxGpusPerNode} (settings gpusPerNode)`;
}

/** Refuses, with a UsageError, a job the settings say no node can hold. */
export function checkJobLimits(job: { ranksPerNode?: number; gpusPerRank?: number }, limits: JobLimits): void {
  const why = gpuLimitProblem({ ranksPerNode: job.ranksPerNode ?? 1, gpusPerRank: job.gpusPerRank }, limits.maxGpusPerNode);
  if (why) throw new UsageError(why, { hint: "lower gpus_per_rank, or correct gpusPerNode in settings.json" });
}
