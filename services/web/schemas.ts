import { z } from "zod";
import { JOB_STATES, MAX_JOB_COUNT } from "../../libs/client/index.js";
import { HttpError } from "./errors.js";

/** The most jobs one bulk add takes: above it a client splits its list (the answer holds every job, ~1 kB each). */
export const MAX_BULK_JOBS = 10_000;
/** The most ids one results stream watches. */
export const MAX_RESULT_IDS = 100_000;
export const MAX_PAGE = 1000;

const count = z.number().int().min(1).max(MAX_JOB_COUNT);
const str = z.string().max(100_000);

/** The plain fields a user may give a job (as `balsam job` and `jobs.add` take them). */
const jobFields = {
  args: str,
  description: str,
  data: z.record(z.string(), z.unknown()),
  numNodes: count,
  ranksPerNode: count,
  threadsPerRank: count,
  threadsPerCore: count,
  cpuAffinity: z.enum(["none", "depth"]),
  nodePackingCount: count,
  gpusPerRank: z.number().int().min(0).max(MAX_JOB_COUNT),
  coscheduleNumNodes: z.number().int().min(0).max(MAX_JOB_COUNT),
  wallTimeMinutes: z.number().min(0).max(MAX_JOB_COUNT),
  mpiFlags: str,
  environVars: z.record(z.string(), z.string()),
  // Keys and values are checked further by the client (libs/models/tags.ts).
  tags: z.record(z.string(), z.string()),
  inputFiles: str,
  stageInUrl: str,
  stageOutFiles: str,
  stageOutUrl: str,
  postErrorHandler: z.boolean(),
  postTimeoutHandler: z.boolean(),
  autoTimeoutRetry: z.boolean(),
  fastFailRetries: z.number().int().min(0),
  waitForParents: z.boolean(),
  preprocess: str,
  postprocess: str,
};

export const JobSpecSchema = z
  .object({
    name: z.string().min(1).max(1000),
    workflow: z.string().min(1).max(1000),
    application: z.string().min(1).max(1000),
    parents: z.array(z.string().min(1)).max(10_000),
    ...jobFields,
  })
  .partial({ parents: true, ...Object.fromEntries(Object.keys(jobFields).map((k) => [k, true])) })
  .strict();

/** One job added (POST /api/jobs): its spec, and the job that spawned it, for the child's first history line. */
export const JobCreateSchema = JobSpecSchema.extend({ spawnedBy: z.string().min(1).max(200).optional() }).strict();

export const BulkSchema = z.object({ jobs: z.array(z.unknown()) }).strict();

/** What PATCH may set on one job: the plain fields, and name/application. */
export const SetSchema = z
  .object({ name: z.string().min(1).max(1000), application: z.string().min(1).max(1000), ...jobFields })
  .partial()
  .strict();

export const PatchOneSchema = z
  .object({ set: SetSchema.optional(), state: z.enum(JOB_STATES).optional(), message: z.string().max(10_000).optional() })
  .strict()
  .refine((b) => b.set !== undefined || b.state !== undefined, { message: "give `set` and/or `state`" })
  .refine((b) => b.message === undefined || b.state !== undefined, { message: "`message` goes with `state`" });

export const PatchManySchema = z.object({ set: SetSchema.omit({ name: true, application: true }) }).strict();

export const RerunSchema = z.object({ restart: z.boolean().optional() }).strict();
export const KillSchema = z.object({ recursive: z.boolean().optional() }).strict();
export const ParentSchema = z.object({ parent: z.string().min(1) }).strict();
export const ParentsSchema = z.object({ parents: z.array(z.string().min(1).max(200)).max(10_000) }).strict();

export const AppSpecSchema = z
  .object({
    name: z.string().min(1).max(1000),
    executable: z.string().min(1).max(100_000),
    preprocess: str.optional(),
    postprocess: str.optional(),
    envscript: str.optional(),
    description: str.optional(),
  })
  .strict();

export const ResultsSchema = z
  .object({
    ids: z.array(z.string().min(1).max(200)).min(1).max(MAX_RESULT_IDS),
    timeoutMs: z.number().int().min(0).max(24 * 3600 * 1000).optional(),
  })
  .strict();

/** Parses `value` or throws a 400 naming the first problem, e.g. `body: unknown field 'nodes'`. */
export function parse<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (!issue) throw new HttpError(400, "BadRequest", `${where} is not valid`);
  const at = issue.path.length ? `${where}.${issue.path.join(".")}` : where;
  if (issue.code === "unrecognized_keys") {
    throw new HttpError(400, "BadRequest", `${at}: unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `'${k}'`).join(", ")}`);
  }
  throw new HttpError(400, "BadRequest", `${at}: ${issue.message}`);
}
