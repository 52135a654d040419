import type { Job, StateHistoryEntry } from "./job.js";

/**
 * `balsam report`: what a campaign did, from the jobs' state histories, as
 * Balsam 0.x's `utilization_report` / `throughput_report` computed it
 * (balsam/core/models.py, 0.5.0) and Balsam 2's `balsam/analytics.py` does
 * from its events. Pure: the store streams documents in, a series comes out.
 *
 * - utilization: how many jobs were running, over time. A run starts at a
 *   RUNNING entry and ends at the next entry of another state (RUN_DONE,
 *   RUN_ERROR, RUN_TIMEOUT, a kill, a lapsed lease's RESTART_READY). 0.x
 *   ended runs only at RUN_DONE/RUN_ERROR/RUN_TIMEOUT, so a killed run
 *   counted as running forever. A run recorded in one write (it ended within
 *   the launcher's claimAfterMs, DESIGN §7: RUNNING and its end share one
 *   time) is placed at [end − runtime_seconds, end] when it is the job's
 *   last run, whose runtime the job keeps; otherwise it lasts no time.
 * - throughput: how many jobs had finished, cumulatively: one step per
 *   JOB_FINISHED entry (a job rerun and finished again counts again, as 0.x
 *   counted every RUN_DONE line). 0.x counted RUN_DONE; JOB_FINISHED is
 *   "finished" after postprocessing and stage-out too.
 * - errors: the FAILED jobs grouped by their last error line (see
 *   lastErrorLine), most frequent first.
 *
 * With `since`, utilization starts with the level at `since`, throughput
 * counts from 0 at `since`, errors keep the jobs that failed at or after it.
 */
export type ReportKind = "utilization" | "throughput" | "errors";
export const REPORT_KINDS: readonly ReportKind[] = ["utilization", "throughput", "errors"];

/** What a report reads of a job. */
export type ReportDoc = Pick<Job, "_id" | "state" | "stateHistory"> & Partial<Pick<Job, "runtimeSeconds">>;
export const REPORT_PROJECTION = { _id: 1, state: 1, stateHistory: 1, runtimeSeconds: 1 } as const;

/** A step function: after `times[i]` the value is `values[i]`. */
export interface Series {
  times: Date[];
  values: number[];
}

export interface ErrorGroup {
  line: string;
  count: number;
  /** Up to 3 of the jobs, to look at with `balsam ls --id` / `balsam log`. */
  examples: string[];
}

export type Report = { kind: "utilization" | "throughput"; series: Series } | { kind: "errors"; errors: ErrorGroup[] };

const MAX_LINE = 200;

/** The run intervals of one job, in ms; `end` undefined while it runs. */
export function runIntervals(doc: ReportDoc): Array<{ start: number; end?: number }> {
  const h = doc.stateHistory;
  const runs: Array<{ start: number; end?: number }> = [];
  for (let i = 0; i < h.length; i++) {
    const e = h[i] as StateHistoryEntry;
    if (e.state !== "RUNNING") continue;
    // Consecutive RUNNING entries (a restart recorded straight to RUNNING) are one run.
    if (i > 0 && h[i - 1]?.state === "RUNNING") continue;
    let j = i + 1;
    while (j < h.length && h[j]?.state === "RUNNING") j++;
    const start = e.at.getTime();
    const endEntry = h[j];
    runs.push(endEntry ? { start, end: endEntry.at.getTime() } : { start });
  }
  const last = runs[runs.length - 1];
  if (last && last.end !== undefined && last.end === last.start && typeof doc.runtimeSeconds === "number" && doc.runtimeSeconds > 0) {
    last.start = last.end - Math.round(doc.runtimeSeconds * 1000);
  }
  return runs;
}

/**
 * The last error line of a failed job: where the run's own output says why
 * (a RUN_ERROR's "output ends: a | b | ValueError: x" → "ValueError: x"),
 * else the message of its last FAILED/RUN_ERROR/RUN_TIMEOUT entry.
 */
export function lastErrorLine(history: readonly StateHistoryEntry[]): string {
  let fallback = "";
  for (let i = history.length - 1; i >= 0; i--) {
    const e = history[i] as StateHistoryEntry;
    if (e.state === "RUNNING") break; // before this run: another attempt's story
    if (!["FAILED", "RUN_ERROR", "RUN_TIMEOUT"].includes(e.state) || !e.message) continue;
    const tail = e.message.indexOf("output ends: ");
    if (tail >= 0) {
      const lines = e.message.slice(tail + "output ends: ".length).split(" | ");
      return oneLine(lines[lines.length - 1] ?? "");
    }
    if (!fallback) fallback = oneLine(e.message);
  }
  return fallback || "(no message)";
}

function oneLine(s: string): string {
  const l = s.replace(/\s+/g, " ").trim();
  return l.length > MAX_LINE ? l.slice(0, MAX_LINE - 1) + "…" : l;
}

/** Folds (time, delta) events into a step series: one point per distinct time, the value after all its events. */
function steps(events: Array<[number, number]>, start: number, since: number | undefined): Series {
  events.sort((a, b) => a[0] - b[0]);
  const times: Date[] = [];
  const values: number[] = [];
  let level = start;
  let i = 0;
  if (since !== undefined) {
    while (i < events.length && (events[i] as [number, number])[0] < since) level += (events[i++] as [number, number])[1];
    // The level at `since` starts the series, when anything happened before.
    if (i > 0) {
      times.push(new Date(since));
      values.push(level);
    }
  }
  while (i < events.length) {
    const t = (events[i] as [number, number])[0];
    while (i < events.length && (events[i] as [number, number])[0] === t) level += (events[i++] as [number, number])[1];
    if (times.length && (times[times.length - 1] as Date).getTime() === t) values[values.length - 1] = level;
    else {
      times.push(new Date(t));
      values.push(level);
    }
  }
  return { times, values };
}

/** Builds one report from documents streamed in (a million jobs never sit in memory, only their events). */
export class ReportBuilder {
  private readonly events: Array<[number, number]> = [];
  private readonly groups = new Map<string, ErrorGroup>();
  private readonly sinceMs: number | undefined;

  constructor(
    readonly kind: ReportKind,
    since?: Date,
  ) {
    this.sinceMs = since?.getTime();
  }

  add(doc: ReportDoc): void {
    if (this.kind === "utilization") {
      for (const r of runIntervals(doc)) {
        this.events.push([r.start, 1]);
        if (r.end !== undefined) this.events.push([r.end, -1]);
      }
    } else if (this.kind === "throughput") {
      for (const e of doc.stateHistory) {
        const t = e.at.getTime();
        if (e.state === "JOB_FINISHED" && (this.sinceMs === undefined || t >= this.sinceMs)) this.events.push([t, 1]);
      }
    } else {
      if (doc.state !== "FAILED") return;
      const failed = [...doc.stateHistory].reverse().find((e) => e.state === "FAILED");
      if (this.sinceMs !== undefined && (!failed || failed.at.getTime() < this.sinceMs)) return;
      const line = lastErrorLine(doc.stateHistory);
      const g = this.groups.get(line) ?? { line, count: 0, examples: [] };
      g.count++;
      if (g.examples.length < 3) g.examples.push(doc._id);
      this.groups.set(line, g);
    }
  }

  result(): Report {
    if (this.kind === "errors") {
      return { kind: "errors", errors: [...this.groups.values()].sort((a, b) => b.count - a.count || (a.line < b.line ? -1 : a.line > b.line ? 1 : 0)) };
    }
    return { kind: this.kind, series: steps(this.events, 0, this.kind === "utilization" ? this.sinceMs : undefined) };
  }
}

/** A report over documents already in hand (tests, small selections). */
export function buildReport(kind: ReportKind, docs: Iterable<ReportDoc>, since?: Date): Report {
  const b = new ReportBuilder(kind, since);
  for (const d of docs) b.add(d);
  return b.result();
}
