import { createRequire } from "node:module";
import { JOB_FIELDS, JOB_STATES, formatTags, isJobState, jobField, parseTags, type FieldSpec, type JobState, type Tags } from "../libs/models/index.js";
import { queueName as checkWorkflowName } from "../libs/queue/names.js";
import { UsageError } from "../libs/errors/index.js";
import type { JobFilter } from "../libs/client/index.js";

/** The columns every job listing starts with, as in the seed's `balsam ls`. */
export const LS_BASE_FIELDS = ["job_id", "name", "workflow", "application", "state"] as const;

/**
 * Rows `balsam ls` prints when BALSAM_LS_LIMIT is unset: a first page, with
 * a note on stderr when more match. 1,000 rows are twenty screens, and keep
 * `ls --wf X` near 0.3 s on a workflow of 10,000+ jobs: the embedded server
 * spends ~70 µs per job it returns (370 ms for 5,000, the previous default,
 * which took 1.3 s in all), the client ~30 µs more.
 */
export const DEFAULT_LS_LIMIT = 1000;

function fieldNames(specs: readonly FieldSpec[]): string {
  return specs.map((f) => f.snake).join(", ");
}

/**
 * The job columns of `balsam ls`: the five base ones, then BALSAM_LS_FIELDS
 * (colon-separated snake_case names). A name that is not a job field, or an
 * empty one (`num_nodes::args`), is a usage error naming the valid fields.
 */
export function lsFields(env: NodeJS.ProcessEnv = process.env): FieldSpec[] {
  const out = LS_BASE_FIELDS.map((n) => jobField(n) as FieldSpec);
  const raw = env.BALSAM_LS_FIELDS ?? "";
  if (raw.trim() === "") return out;
  for (const part of raw.split(":")) {
    const name = part.trim();
    if (name === "") {
      throw new UsageError(`BALSAM_LS_FIELDS='${raw}' has an empty field name`, { hint: "separate field names with single colons, e.g. num_nodes:args" });
    }
    const spec = jobField(name);
    if (!spec) throw new UsageError(`unknown field '${name}' in BALSAM_LS_FIELDS`, { hint: `valid fields: ${fieldNames(JOB_FIELDS)}` });
    if (!out.includes(spec)) out.push(spec);
  }
  return out;
}

export function lsLimit(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.BALSAM_LS_LIMIT;
  if (raw === undefined || raw.trim() === "") return DEFAULT_LS_LIMIT;
  if (!/^\d+$/.test(raw.trim()) || Number.parseInt(raw, 10) < 1) {
    throw new UsageError(`BALSAM_LS_LIMIT must be a whole number ≥ 1, not '${raw}'`);
  }
  return Number.parseInt(raw, 10);
}

/** A `--state` option checked before any server is contacted. */
export function parseState(raw: string | undefined): JobState | undefined {
  if (raw === undefined) return undefined;
  if (!isJobState(raw)) throw new UsageError(`unknown state '${raw}'`, { hint: `states: ${JOB_STATES.join(", ")}` });
  return raw;
}

/**
 * The `<objects>` word of `ls`/`rm`: one of `kinds`, or its singular
 * (`rm job`, `ls job` as Balsam 0.x took them).
 */
export function objectsArg<K extends string>(kinds: readonly K[]): (v: string) => K {
  return (v: string) => {
    const k = kinds.find((x) => x === v || x === `${v}s`);
    if (!k) throw new UsageError(`'${v}' is not something to list or remove: use ${kinds.join(", ")}`);
    return k;
  };
}

/** A `--wf` option: a name that cannot be a queue name can never hold jobs, so it is a usage error. */
export function parseWorkflow(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  checkWorkflowName(raw);
  return raw;
}

/** Repeated `--tag KEY=VALUE` words: one map, or a usage error (exit 2) naming the bad word, before any server is asked. */
export function parseTagWords(words: readonly string[] | undefined): Tags | undefined {
  return parseTags(words);
}

/** The job selectors `ls`, `rm` and `report` share. */
export interface SelectorOptions {
  name?: string;
  id?: string;
  wf?: string;
  wfExact?: string;
  state?: string;
  tag?: string[];
}

/** Those selectors as one filter: `--wf` matches as 0.x did (workflow__icontains), `--wf-exact` names one workflow. */
export function selectorFilter(o: SelectorOptions): JobFilter {
  if (o.wf !== undefined && o.wfExact !== undefined) throw new UsageError("give one of --wf and --wf-exact");
  return {
    name: o.name || undefined,
    id: o.id || undefined,
    workflowContains: parseWorkflow(o.wf),
    workflow: parseWorkflow(o.wfExact),
    state: parseState(o.state),
    tags: parseTagWords(o.tag),
  };
}

/** Commander collector for a repeatable `--tag KEY=VALUE`. */
export function collectTag(word: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), word];
}

export function valueOf(doc: object, spec: FieldSpec): unknown {
  return (doc as Record<string, unknown>)[spec.key];
}

/** A field value as one table cell: one line, no quoting beyond what the value holds. */
export function cell(spec: FieldSpec, value: unknown): string {
  if (value === null || value === undefined) return "";
  let s: string;
  if (value instanceof Date) s = value.toISOString();
  else if (spec.type === "env" && typeof value === "object") {
    s = Object.entries(value as Record<string, string>)
      .map(([k, v]) => `${k}=${v}`)
      .join(":");
  } else if (spec.type === "tags" && typeof value === "object") s = formatTags(value as Record<string, string>);
  else if (Array.isArray(value)) s = value.join(",");
  else if (typeof value === "object") s = JSON.stringify(value);
  else s = String(value);
  // Most cells hold no newline: no regex for them (a 1,000-row `ls` makes 5,000 cells on cold code).
  return s.includes("\n") ? s.replace(/\r?\n/g, "\\n") : s;
}

/** A field value for `--json`: native JSON types, dates as ISO strings. */
export function jsonValue(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (value === undefined) return null;
  return value;
}

export function toJsonRecord(doc: object, specs: readonly FieldSpec[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of specs) out[s.snake] = jsonValue(valueOf(doc, s));
  return out;
}

/**
 * An aligned table: a header row of column names, a line of dashes, then the
 * rows, columns separated by ` | ` as in the seed's `balsam ls` output.
 */
export function table(columns: readonly string[], rows: ReadonlyArray<Record<string, string>>): string[] {
  const lines = plainTable(columns, rows) ?? columnifyTable(columns, rows);
  let width = 0;
  for (const l of lines) if (l.length > width) width = l.length;
  lines.splice(1, 0, "-".repeat(width));
  return lines;
}

/** The table as columnify draws it (any cell: wide characters, escape sequences). */
export function columnifyTable(columns: readonly string[], rows: ReadonlyArray<Record<string, string>>): string[] {
  // Required here, not imported: only commands that print a table pay its load.
  const columnify = createRequire(import.meta.url)("columnify") as typeof import("columnify");
  const text = columnify([...rows], {
    columns: [...columns],
    columnSplitter: " | ",
    headingTransform: (h: string) => h,
    preserveNewLines: false,
  });
  return text.split("\n").map((l) => l.trimEnd());
}

/** Printable ASCII only: one character, one column, and no whitespace but the space. */
const PLAIN = /^[\x20-\x7e]*$/;

/**
 * The lines columnify gives (header and rows, right-trimmed) when every cell
 * is printable ASCII, which is what job listings hold; `undefined` otherwise,
 * and columnify, which measures wide characters and escape sequences, draws
 * the table. Columnify spent ~60 µs per row (a new RegExp per cell to strip
 * ANSI, a width lookup per character): 0.3 s of a 5,000-row `ls`, against
 * ~2 ms here. For such cells columnify trims each one, pads it to its
 * column's widest and joins with the splitter; unit tests compare both.
 */
export function plainTable(columns: readonly string[], rows: ReadonlyArray<Record<string, string>>): string[] | undefined {
  const n = columns.length;
  const grid: string[][] = [];
  const widths = new Array<number>(n).fill(0);
  const add = (cells: string[]): boolean => {
    for (let i = 0; i < n; i++) {
      const c = cells[i] as string;
      if (!PLAIN.test(c)) return false;
      const t = c.trim();
      cells[i] = t;
      if (t.length > (widths[i] as number)) widths[i] = t.length;
    }
    grid.push(cells);
    return true;
  };
  if (!add([...columns])) return undefined;
  for (const r of rows) {
    const cells = new Array<string>(n);
    for (let i = 0; i < n; i++) cells[i] = String(r[columns[i] as string] ?? "");
    if (!add(cells)) return undefined;
  }
  return grid.map((cells) => cells.map((c, i) => c.padEnd(widths[i] as number)).join(" | ").trimEnd());
}

export function printLines(lines: readonly string[]): void {
  if (lines.length) process.stdout.write(lines.join("\n") + "\n");
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

/** A note for the user on stderr, so stdout stays parseable. */
export function note(message: string): void {
  process.stderr.write(`balsam: ${message}\n`);
}

/** `a, b, c and 7 more`: what a confirmation prompt shows of a long list. */
export function preview(names: readonly string[], max = 5): string {
  const shown = names.slice(0, max).join(", ");
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}
