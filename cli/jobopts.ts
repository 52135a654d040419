import { Option, type Command } from "commander";
import { JOB_FIELDS, checkJobForLaunch, checkJobLimits, MAX_JOB_COUNT, parseEnvAssignments, type Job, type JobSpec } from "../libs/models/index.js";
import { queueName as checkWorkflowName } from "../libs/queue/names.js";
import type { Balsam } from "../libs/client/index.js";
import { UsageError } from "../libs/errors/index.js";
import { aliasOption } from "./argv.js";
import { confirm, intOption, isTerminal, out } from "./common.js";
import { cell, collectTag, note, parseTagWords, valueOf } from "./format.js";

/**
 * The job options `balsam job` and `balsam mkchild` share. Options declared
 * with a required `<value>` take the next word even when it starts with a
 * dash (commander 14 `parseOptions`), so `--args '--evaluator balsam'` and
 * `--mpi-flags '-x FOO'` work as they do in Balsam.
 */
export interface JobOptionValues {
  name: string;
  workflow?: string;
  application: string;
  args?: string[];
  description?: string[];
  wallTimeMinutes?: number;
  numNodes?: number;
  coscheduleNumNodes?: number;
  nodePackingCount?: number;
  gpusPerRank?: number;
  ranksPerNode?: number;
  threadsPerRank?: number;
  threadsPerCore?: number;
  cpuAffinity?: "none" | "depth";
  mpiFlags?: string;
  env?: string[];
  inputFiles?: string[];
  preprocessor?: string;
  postprocessor?: string;
  urlIn?: string;
  urlOut?: string;
  stageOutFiles?: string;
  postHandleError?: boolean;
  postHandleTimeout?: boolean;
  disableAutoTimeoutRetry?: boolean;
  fastFailRetries?: number;
  tag?: string[];
  yes?: boolean;
}

export function addJobOptions(cmd: Command, opts: { workflowRequired: boolean }): Command {
  aliasOption(cmd, "--wall-minutes", "--wall-time-minutes");
  cmd.requiredOption("--name <name>", "job name");
  if (opts.workflowRequired) cmd.requiredOption("--workflow <workflow>", "workflow the job belongs to (its launcher queue)");
  else cmd.option("--workflow <workflow>", "workflow the job belongs to (default: the parent's)");
  return cmd
    .requiredOption("--application <app>", "name of the application to run (`balsam ls apps`)")
    .option("--args <args...>", "arguments given to the application: one quoted word (may start with '-') or several words, joined by spaces")
    .option("--description <words...>", "free-text description")
    .option("--wall-time-minutes <minutes>", "expected run time (default 1; 0.x: --wall-minutes)", intOption("--wall-time-minutes", 0, MAX_JOB_COUNT))
    .option("--num-nodes <n>", "nodes for an MPI job (default 1)", intOption("--num-nodes", 1, MAX_JOB_COUNT))
    .option("--coschedule-num-nodes <n>", "extra nodes kept for a coscheduled service (default 0)", intOption("--coschedule-num-nodes", 0, MAX_JOB_COUNT))
    .option("--node-packing-count <n>", "serial jobs packed per node (default 1)", intOption("--node-packing-count", 1, MAX_JOB_COUNT))
    .option("--gpus-per-rank <n>", "whole GPUs each rank gets (default 0): the launcher hands the job exactly its own devices", intOption("--gpus-per-rank", 0, MAX_JOB_COUNT))
    .option("--ranks-per-node <n>", "MPI ranks per node (default 1)", intOption("--ranks-per-node", 1, MAX_JOB_COUNT))
    .option("--threads-per-rank <n>", "threads per rank (default 1)", intOption("--threads-per-rank", 1, MAX_JOB_COUNT))
    .option("--threads-per-core <n>", "threads per core (default 1)", intOption("--threads-per-core", 1, MAX_JOB_COUNT))
    .addOption(new Option("--cpu-affinity <mode>", "MPI CPU binding (default none)").choices(["none", "depth"]))
    .option("--mpi-flags <flags>", "extra flags for the MPI launch command")
    .option("--env <VAR=VALUE...>", "environment variables for the job: words, or joined by ',' or ':' where VAR= follows (PATH=/a:/b keeps its ':')")
    .option("--input-files <patterns...>", "files staged in from parents' working directories: glob patterns, as words or one spaced string (default '*')")
    .option("--preprocessor <script>", "this job's preprocess script, instead of its app's")
    .option("--postprocessor <script>", "this job's postprocess script, instead of its app's")
    .option("--url-in <url>", "stage-in URL")
    .option("--url-out <url>", "stage-out URL")
    .option("--stage-out-files <patterns>", "files to stage out")
    .option("--post-handle-error", "let the postprocess script handle RUN_ERROR")
    .option("--post-handle-timeout", "let the postprocess script handle RUN_TIMEOUT")
    .option("--disable-auto-timeout-retry", "do not restart a job that timed out")
    .option("--fast-fail-retries <n>", "restart a run that fails within 20 s (exit code 1 or 255, or SIGSEGV) up to N times, as 0.x did (default 3; 0: fail at once)", intOption("--fast-fail-retries", 0))
    .option("--tag <KEY=VALUE>", "a label for selecting the job later (repeatable; `ls --tag`, `launcher --tag`)", collectTag)
    .option("--yes", "do not ask for confirmation");
}

/** Turns the parsed options into a job spec; everything local is validated here, before any server is contacted. */
export function jobSpecFrom(o: JobOptionValues, extra: { workflow?: string; parents?: string[] } = {}): JobSpec {
  const workflow = o.workflow ?? extra.workflow;
  if (!workflow) throw new UsageError("the job needs a workflow: give --workflow");
  checkWorkflowName(workflow);
  if (!o.name.trim()) throw new UsageError("--name must not be empty");
  let environVars: Record<string, string> | undefined;
  if (o.env) {
    try {
      environVars = parseEnvAssignments(o.env);
    } catch (err) {
      throw new UsageError(`--env: ${(err as Error).message}`);
    }
  }
  const tags = parseTagWords(o.tag);
  const spec: JobSpec = {
    name: o.name,
    workflow,
    application: o.application,
    args: o.args?.join(" "),
    description: o.description?.join(" "),
    wallTimeMinutes: o.wallTimeMinutes,
    numNodes: o.numNodes,
    coscheduleNumNodes: o.coscheduleNumNodes,
    nodePackingCount: o.nodePackingCount,
    gpusPerRank: o.gpusPerRank,
    ranksPerNode: o.ranksPerNode,
    threadsPerRank: o.threadsPerRank,
    threadsPerCore: o.threadsPerCore,
    cpuAffinity: o.cpuAffinity,
    mpiFlags: o.mpiFlags,
    environVars,
    tags,
    inputFiles: o.inputFiles?.join(" "),
    preprocess: o.preprocessor,
    postprocess: o.postprocessor,
    stageInUrl: o.urlIn,
    stageOutUrl: o.urlOut,
    stageOutFiles: o.stageOutFiles,
    postErrorHandler: o.postHandleError,
    postTimeoutHandler: o.postHandleTimeout,
    autoTimeoutRetry: o.disableAutoTimeoutRetry ? false : undefined,
    fastFailRetries: o.fastFailRetries,
    parents: extra.parents,
  };
  checkJobForLaunch(spec);
  return spec;
}

/**
 * Whether a workflow already has jobs. On MongoDB the `{workflow, state}`
 * index answers at once; FerretDB has no index pushdown and decodes every
 * job (about 45 s per 100k here), so the queues answer first where they can:
 * a workflow that never had a queue is new (jobs that never became runnable
 * are missed, which only costs a warning), and one with queue entries has
 * jobs.
 */
async function workflowHasJobs(b: Balsam, workflow: string): Promise<boolean> {
  if (!(await b.queues.workflows()).includes(workflow)) return false;
  if ((await b.queues.pending(workflow)) > 0) return true;
  const one = await b.jobs.filter({ workflow }).list({ limit: 1, projection: { _id: 1 } });
  return one.length > 0;
}

/**
 * The rest of `job` and `mkchild`: check the app, warn when the workflow
 * already has jobs (a launcher on it would run them too; a child joining its
 * parent's workflow is expected to), ask on a terminal unless --yes, add, and
 * print the new id on stdout.
 */
export async function addJobInteractively(b: Balsam, spec: JobSpec, opts: { yes: boolean; warnExisting: boolean }): Promise<Job | undefined> {
  // Before any warning: a job no node can hold gets its one line and nothing else.
  checkJobLimits(spec, b.jobs.limits);
  await b.apps.get(spec.application);
  if (opts.warnExisting && (await workflowHasJobs(b, spec.workflow))) {
    note(`warning: workflow ${spec.workflow} already has jobs (\`balsam ls --wf ${spec.workflow}\`); a launcher on ${spec.workflow} runs them too`);
  }
  if (isTerminal() && !opts.yes) {
    for (const f of JOB_FIELDS) {
      const v = valueOf(spec, f);
      if (v !== undefined) process.stderr.write(`  ${f.snake}: ${cell(f, v)}\n`);
    }
    if (!(await confirm("add this job?"))) {
      note("job not added");
      return undefined;
    }
  }
  const job = await b.jobs.add(spec);
  out(job._id);
  return job;
}
