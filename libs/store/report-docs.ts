import { REPORT_PROJECTION, type ReportDoc, type ReportKind } from "../models/index.js";
import type { Store } from "./connection.js";
import { coll } from "./collections.js";
import { jobFilterQuery, resolveJobFilter, type JobFilter } from "./jobs.js";

/**
 * Streams what a report reads (state, history, runtime) of the jobs a filter
 * selects, one batch of documents in memory at a time.
 *
 * Filter: the selectors' query (jobFilterQuery: `{workflow}`, `{"tags.K"}`
 * and `{state}` are served by their indexes); the errors report adds
 * `state: FAILED` (the `{state}` index). Otherwise a report reads every
 * selected job's history: it is a scan of its selection, as 0.x's was.
 * Server behaviour needed: a projected find (both MongoDB and FerretDB).
 */
export async function forEachReportDoc(store: Store, kind: ReportKind, f: JobFilter, fn: (d: ReportDoc) => void): Promise<void> {
  const r = await resolveJobFilter(store, kind === "errors" && f.state === undefined ? { ...f, state: "FAILED" } : f);
  if (!r) return;
  const cur = coll(store).jobs.find(jobFilterQuery(r), { projection: REPORT_PROJECTION, batchSize: 5000 });
  for await (const d of cur) fn(d as ReportDoc);
}
