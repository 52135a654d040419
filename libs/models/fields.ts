import { parseTags } from "./tags.js";
/**
 * The mapping between Balsam's snake_case field names (command line, `ls`
 * output, BALSAM_LS_FIELDS) and the stored camelCase ones, with each field's
 * type so `balsam modify` parses `false` as false and `4` as a number.
 */
export type FieldType = "string" | "int" | "bool" | "json" | "env" | "tags" | "stringList" | "date" | "state";

export interface FieldSpec {
  snake: string;
  key: string;
  type: FieldType;
  /** `balsam modify` may set it (state goes through the transition table). */
  editable: boolean;
}

function f(snake: string, key: string, type: FieldType, editable = true): FieldSpec {
  return { snake, key, type, editable };
}

export const JOB_FIELDS: readonly FieldSpec[] = [
  f("job_id", "_id", "string", false),
  f("name", "name", "string"),
  f("workflow", "workflow", "string", false),
  f("application", "application", "string"),
  f("args", "args", "string"),
  f("description", "description", "string"),
  f("state", "state", "state"),
  f("parents", "parents", "stringList", false),
  f("has_children", "hasChildren", "bool", false),
  f("data", "data", "json"),
  f("num_nodes", "numNodes", "int"),
  f("ranks_per_node", "ranksPerNode", "int"),
  f("threads_per_rank", "threadsPerRank", "int"),
  f("threads_per_core", "threadsPerCore", "int"),
  f("cpu_affinity", "cpuAffinity", "string"),
  f("node_packing_count", "nodePackingCount", "int"),
  f("gpus_per_rank", "gpusPerRank", "int"),
  f("coschedule_num_nodes", "coscheduleNumNodes", "int"),
  f("wall_time_minutes", "wallTimeMinutes", "int"),
  f("mpi_flags", "mpiFlags", "string"),
  f("environ_vars", "environVars", "env"),
  f("tags", "tags", "tags"),
  f("input_files", "inputFiles", "string"),
  f("stage_in_url", "stageInUrl", "string"),
  f("stage_out_files", "stageOutFiles", "string"),
  f("stage_out_url", "stageOutUrl", "string"),
  f("post_error_handler", "postErrorHandler", "bool"),
  f("post_timeout_handler", "postTimeoutHandler", "bool"),
  f("auto_timeout_retry", "autoTimeoutRetry", "bool"),
  f("fast_fail_retries", "fastFailRetries", "int"),
  f("wait_for_parents", "waitForParents", "bool"),
  f("preprocess", "preprocess", "string"),
  f("postprocess", "postprocess", "string"),
  f("working_directory", "workdir", "string", false),
  f("lock", "lock", "json", false),
  f("attempts", "attempts", "int", false),
  f("exit_code", "exitCode", "int", false),
  f("runtime_seconds", "runtimeSeconds", "int", false),
  f("queued_launch", "queuedLaunch", "string", false),
  f("created_at", "createdAt", "date", false),
  f("updated_at", "updatedAt", "date", false),
];

export const APP_FIELDS: readonly FieldSpec[] = [
  f("app_id", "_id", "string", false),
  f("name", "name", "string"),
  f("executable", "executable", "string"),
  f("preprocess", "preprocess", "string"),
  f("postprocess", "postprocess", "string"),
  f("envscript", "envscript", "string"),
  f("description", "description", "string"),
];

export function jobField(snake: string): FieldSpec | undefined {
  return JOB_FIELDS.find((x) => x.snake === snake);
}

export function appField(snake: string): FieldSpec | undefined {
  return APP_FIELDS.find((x) => x.snake === snake);
}

/**
 * Parses a command-line string into the field's type. Throws a plain Error
 * with a message naming the field; callers wrap it in a UsageError.
 */
export function parseFieldValue(spec: FieldSpec, raw: string): unknown {
  switch (spec.type) {
    case "string":
    case "state":
      return raw;
    case "int": {
      if (!/^-?\d+$/.test(raw.trim())) throw new Error(`${spec.snake} must be a whole number, not '${raw}'`);
      const n = Number.parseInt(raw, 10);
      if (!Number.isSafeInteger(n)) throw new Error(`${spec.snake} is too large: ${raw.trim()}`);
      return n;
    }
    case "bool": {
      const v = raw.trim().toLowerCase();
      if (["true", "1", "yes", "on"].includes(v)) return true;
      if (["false", "0", "no", "off"].includes(v)) return false;
      throw new Error(`${spec.snake} must be true or false, not '${raw}'`);
    }
    case "json":
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        throw new Error(`${spec.snake} must be JSON, not '${raw}'`);
      }
    case "env":
      return parseEnvAssignments([raw]);
    case "tags":
      // `k=v,k2=v2` (the whole set; '' clears it), as `ls` shows them.
      return parseTags(raw.split(",").filter((w) => w.length > 0)) ?? {};
    case "stringList":
      return raw.split(",").filter((s) => s.length > 0);
    case "date": {
      const d = new Date(raw);
      if (Number.isNaN(d.getTime())) throw new Error(`${spec.snake} must be a date, not '${raw}'`);
      return d;
    }
  }
}

/**
 * Environment variables as the command line takes them — one rule for
 * `job --env` and `modify ID environ_vars`: VAR=VALUE entries, as separate
 * words or joined by ',' or ':', where a ',' or ':' starts a new entry only
 * when `VAR=` follows it. So `A=1,B=2` and `A=1:B=2` (Balsam 0.x's stored
 * form) are two variables, while `PATH=/usr/bin:/bin` and
 * `CUDA_VISIBLE_DEVICES=0,1` keep their separators. A value that must hold
 * `:NAME=` or `,NAME=` escapes the separator with a backslash
 * (`A=x\:B=y` is the one variable A = `x:B=y`). An empty word sets none.
 */
export function parseEnvAssignments(words: readonly string[]): Record<string, string> {
  const entries = words.flatMap((w) => (w === "" ? [] : w.split(/(?<!\\)[,:](?=[A-Za-z_][A-Za-z0-9_]*=)/)));
  return parseEnvList(entries.map((e) => e.replace(/\\([,:])(?=[A-Za-z_][A-Za-z0-9_]*=)/g, "$1")));
}

/** `["A=1", "B=x=y"]` → `{A: "1", B: "x=y"}`; a missing `=` is an error. */
export function parseEnvList(items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq === 0) throw new Error(`environment entry '${item}' has an empty variable name`);
    if (eq < 0) throw new Error(`environment entry '${item}' must look like VAR=VALUE`);
    const name = item.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`'${name}' is not a valid environment variable name`);
    out[name] = item.slice(eq + 1);
  }
  return out;
}
