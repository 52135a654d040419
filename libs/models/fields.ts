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

/**
 * Builds a table from `snake: type` in the order `ls --verbose` shows them.
 * The stored key is the snake name in camelCase unless `keys` names another.
 */
function fieldTable(types: Record<string, FieldType>, readOnly: readonly string[], keys: Record<string, string> = {}): FieldSpec[] {
  return Object.entries(types).map(([snake, type]) => ({
    snake,
    key: keys[snake] ?? snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
    type,
    editable: !readOnly.includes(snake),
  }));
}

export const JOB_FIELDS: readonly FieldSpec[] = fieldTable(
  {
    job_id: "string", name: "string", workflow: "string", application: "string", args: "string", description: "string",
    state: "state", parents: "stringList", has_children: "bool", data: "json",
    num_nodes: "int", ranks_per_node: "int", threads_per_rank: "int", threads_per_core: "int", cpu_affinity: "string",
    node_packing_count: "int", gpus_per_rank: "int", coschedule_num_nodes: "int", wall_time_minutes: "int",
    mpi_flags: "string", environ_vars: "env", tags: "tags",
    input_files: "string", stage_in_url: "string", stage_out_files: "string", stage_out_url: "string",
    post_error_handler: "bool", post_timeout_handler: "bool", auto_timeout_retry: "bool", fast_fail_retries: "int", wait_for_parents: "bool",
    preprocess: "string", postprocess: "string",
    working_directory: "string", lock: "json", attempts: "int", exit_code: "int", runtime_seconds: "int", queued_launch: "string",
    created_at: "date", updated_at: "date",
  },
  ["job_id", "workflow", "parents", "has_children", "working_directory", "lock", "attempts", "exit_code", "runtime_seconds", "queued_launch", "created_at", "updated_at"],
  { job_id: "_id", working_directory: "workdir" },
);

export const APP_FIELDS: readonly FieldSpec[] = fieldTable(
  { app_id: "string", name: "string", executable: "string", preprocess: "string", postprocess: "string", envscript: "string", description: "string" },
  ["app_id"],
  { app_id: "_id" },
);

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
