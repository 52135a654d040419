import { ReportBuilder, type Report, type ReportKind } from "../models/index.js";
import { forEachReportDoc, type JobFilter, type Store } from "../store/index.js";

/** `balsam report KIND`, the web API's /api/reports/KIND and the Python client's *_report(): one computation (libs/models/reports.ts). */
export async function jobReport(store: Store, kind: ReportKind, filter: JobFilter = {}, opts: { since?: Date } = {}): Promise<Report> {
  const b = new ReportBuilder(kind, opts.since);
  await forEachReportDoc(store, kind, filter, (d) => b.add(d));
  return b.result();
}
