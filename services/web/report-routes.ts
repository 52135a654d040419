import type { FastifyInstance } from "fastify";
import { REPORT_KINDS, type ReportKind } from "../../libs/client/index.js";
import { HttpError } from "./errors.js";
import { selectorsOf } from "./jobs-routes.js";
import type { WebContext } from "./context.js";

/**
 * GET /api/reports/{utilization|throughput|errors}: the series `balsam
 * report KIND --csv` writes, as JSON, for the Python client's
 * utilization_report()/throughput_report()/error_report(). Selectors as
 * /api/jobs; `since` an ISO time.
 */
export function registerReportRoutes(app: FastifyInstance, ctx: WebContext): void {
  app.get("/api/reports/:kind", async (req) => {
    const { kind } = req.params as { kind: string };
    if (!(REPORT_KINDS as readonly string[]).includes(kind)) throw new HttpError(404, "NotFound", `no report '${kind}' (reports: ${REPORT_KINDS.join(", ")})`);
    const q = req.query as Record<string, string | string[] | undefined>;
    const f = selectorsOf(q, ["since"]);
    const rawSince = q.since;
    if (Array.isArray(rawSince)) throw new HttpError(400, "BadRequest", "query parameter 'since' given more than once");
    const since = rawSince ? new Date(rawSince) : undefined;
    if (since && Number.isNaN(since.getTime())) throw new HttpError(400, "BadRequest", `since must be an ISO time, not '${rawSince}'`);
    const r = await ctx.balsam.report(kind as ReportKind, f, { since });
    if (r.kind === "errors") return { kind: r.kind, errors: r.errors };
    return { kind: r.kind, times: r.series.times.map((t) => t.toISOString()), values: r.series.values };
  });
}
