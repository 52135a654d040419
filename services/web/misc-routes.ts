import type { FastifyInstance } from "fastify";
import type { AppSpec } from "../../libs/client/index.js";
import { refreshLaunchStates } from "../service/index.js";
import { listQueuedLaunches, listRunningLaunchers } from "../../libs/store/views.js";
import { HttpError } from "./errors.js";
import { MAX_THROUGHPUT_MINUTES } from "./live.js";
import { AppSpecSchema, parse } from "./schemas.js";
import { metricsText } from "./metrics.js";
import { openApi } from "./openapi.js";
import type { WebContext } from "./context.js";

function noQuery(q: unknown, allowed: readonly string[] = []): void {
  for (const k of Object.keys(q as object)) {
    if (k !== "token" && !allowed.includes(k)) throw new HttpError(400, "BadRequest", `unknown query parameter '${k}'`);
  }
}

const LAUNCH_VIEW = ["scheduler", "schedulerId", "queue", "project", "nodes", "wallTimeMinutes", "jobMode", "wfFilter", "state", "submittedAt", "updatedAt", "scriptPath"] as const;

/** A stored document as the API shows it: `_id` as `id`, then the named fields in that order. */
function apiView<T extends { _id: unknown }, K extends keyof T>(doc: T, keys: readonly K[]): { id: T["_id"] } & Pick<T, K> {
  const view: Record<PropertyKey, unknown> = { id: doc._id };
  for (const k of keys) view[k] = doc[k];
  return view as { id: T["_id"] } & Pick<T, K>;
}

export function registerMiscRoutes(app: FastifyInstance, ctx: WebContext): void {
  const { balsam } = ctx;
  const lastRefresh = { at: 0, errors: [] as string[] };

  app.get("/api/health", async (req) => {
    noQuery(req.query);
    return { ok: true, version: ctx.version };
  });

  app.get("/api/openapi.json", async (req) => {
    noQuery(req.query);
    return openApi(ctx.version);
  });

  app.get("/api/apps", async (req) => {
    noQuery(req.query);
    return { apps: await balsam.apps.list() };
  });

  app.post("/api/apps", async (req, reply) => {
    noQuery(req.query);
    const spec = parse(AppSpecSchema, req.body ?? {}, "body") as AppSpec;
    return reply.code(201).send(await balsam.apps.add(spec));
  });

  app.get("/api/launchers", async (req) => {
    noQuery(req.query);
    const cutoff = Date.now() - ctx.leaseTtlMs;
    const docs = await listRunningLaunchers(balsam.store);
    return {
      launchers: docs.map((l) => ({
        ...apiView(l, ["host", "pid", "mode", "workflows", "nodes"]),
        inFlight: l.inFlight ?? null,
        startedAt: l.startedAt,
        lastHeartbeat: l.heartbeat,
        alive: l.heartbeat.getTime() >= cutoff,
      })),
    };
  });

  app.get("/api/launches", async (req) => {
    noQuery(req.query);
    // As `balsam ls queues`: states refreshed from the scheduler first; one that cannot be asked leaves the last known state.
    // Asking the scheduler spawns squeue/qstat: at most every 30 s, however often the dashboard asks.
    if (Date.now() - lastRefresh.at > 30_000) {
      lastRefresh.at = Date.now();
      lastRefresh.errors = (await refreshLaunchStates(balsam.store)).errors;
    }
    const docs = await listQueuedLaunches(balsam.store);
    return {
      launches: docs.map((d) => apiView(d, LAUNCH_VIEW)),
      errors: lastRefresh.errors,
    };
  });

  app.get("/api/throughput", async (req) => {
    noQuery(req.query, ["minutes"]);
    const raw = (req.query as { minutes?: unknown }).minutes;
    let minutes = 180;
    if (raw !== undefined) {
      if (typeof raw !== "string" || !/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_THROUGHPUT_MINUTES) {
        throw new HttpError(400, "BadRequest", `minutes must be a whole number from 1 to ${MAX_THROUGHPUT_MINUTES}, not '${String(raw)}'`);
      }
      minutes = Number(raw);
    }
    // Not waiting for the backfill: the chart shows what is known and says whether that is all.
    return { perMinute: ctx.feed.throughput(minutes), complete: ctx.feed.complete };
  });

  app.get("/metrics", async (req, reply) => {
    noQuery(req.query);
    const text = await metricsText(ctx.metrics);
    return reply.type(ctx.metrics.contentType).send(text);
  });
}
