import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { coerceError, type FinishedJob } from "../../libs/client/index.js";
import { jobsByIds } from "../../libs/store/views.js";
import { HttpError } from "./errors.js";
import { jobView } from "./jobs-routes.js";
import { ResultsSchema, parse } from "./schemas.js";
import type { WebContext } from "./context.js";

/** Comments on an idle stream keep proxies and SSH tunnels from closing it. */
const KEEPALIVE_MS = 15_000;

/** Takes the response over as `text/event-stream`; returns a writer and a "client left" signal. */
function openStream(req: FastifyRequest, reply: FastifyReply): { send: (event: string, data: unknown) => void; gone: Promise<void>; end: () => void } {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-store",
    Connection: "keep-alive",
    "X-Accel-Buffering": "no",
  });
  res.flushHeaders();
  let closed = false;
  const gone = new Promise<void>((resolve) => {
    req.raw.on("close", () => {
      closed = true;
      resolve();
    });
  });
  const keepalive = setInterval(() => {
    if (!closed) res.write(": keepalive\n\n");
  }, KEEPALIVE_MS);
  return {
    send(event, data) {
      if (!closed) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    gone,
    end() {
      clearInterval(keepalive);
      if (!closed) res.end();
      closed = true;
    },
  };
}

function idsFromQuery(q: Record<string, unknown>): { ids: string[]; timeoutMs?: number } {
  for (const k of Object.keys(q)) {
    if (k !== "ids" && k !== "timeoutMs" && k !== "token") throw new HttpError(400, "BadRequest", `unknown query parameter '${k}' (known: ids, timeoutMs)`);
  }
  const raw = q.ids;
  const ids = (Array.isArray(raw) ? raw : typeof raw === "string" ? [raw] : []).flatMap((s: string) => s.split(",")).map((s) => s.trim()).filter(Boolean);
  let timeoutMs: number | undefined;
  if (q.timeoutMs !== undefined) {
    if (typeof q.timeoutMs !== "string" || !/^\d+$/.test(q.timeoutMs)) throw new HttpError(400, "BadRequest", `timeoutMs must be a whole number of milliseconds, not '${String(q.timeoutMs)}'`);
    timeoutMs = Number(q.timeoutMs);
  }
  return parse(ResultsSchema, { ids, ...(timeoutMs === undefined ? {} : { timeoutMs }) }, "query");
}

/**
 * Streams each job of `ids` once as it reaches a final state, through the
 * same Redis announcements as `balsam.results()`. Everything that arrived
 * together is read back from MongoDB in one `_id $in`, so a burst costs one
 * query, not one per job.
 */
async function streamResults(ctx: WebContext, req: FastifyRequest, reply: FastifyReply, ids: readonly string[], timeoutMs: number | undefined): Promise<void> {
  const unique = [...new Set(ids)];
  // Subscribed (and the already-final ones found) before the stream opens, so a refused id is still a plain 4xx/5xx.
  const w = await ctx.balsam.watch();
  const s = openStream(req, reply);
  let delivered = 0;
  const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
  let left = true;
  void s.gone.then(() => {
    left = false;
    void w.close();
  });
  try {
    await w.add(unique);
    while (left && w.pending > 0) {
      // Past the deadline what has arrived still goes out (the jobs already final, with timeoutMs 0); only waiting ends.
      const wait = Math.max(0, deadline - Date.now());
      const first = await w.next(Number.isFinite(wait) ? { timeoutMs: wait } : {});
      if (!first) break;
      const batch: FinishedJob[] = [first];
      for (let f = await w.next({ timeoutMs: 0 }); f; f = await w.next({ timeoutMs: 0 })) batch.push(f);
      const docs = new Map((await jobsByIds(ctx.balsam.store, batch.map((b) => b.id))).map((j) => [j._id, j]));
      for (const f of batch) {
        const job = docs.get(f.id);
        // The stored state and result win over the announcement's (a late write may have followed it).
        s.send("result", { id: f.id, name: f.name, state: job?.state ?? f.state, result: job ? job.data?.result : f.result, job: job ? jobView(job, ctx.balsam.dbPath) : null });
        delivered++;
      }
    }
    s.send("end", { delivered, timedOut: w.pending > 0 });
  } catch (err) {
    s.send("error", { error: { code: "Internal", message: coerceError(err).message } });
  } finally {
    s.end();
    await w.close();
  }
}

export function registerStreamRoutes(app: FastifyInstance, ctx: WebContext): void {
  app.post("/api/results", async (req, reply) => {
    const b = parse(ResultsSchema, req.body ?? {}, "body");
    await streamResults(ctx, req, reply, b.ids, b.timeoutMs);
  });
  app.get("/api/results", async (req, reply) => {
    const q = idsFromQuery(req.query as Record<string, unknown>);
    await streamResults(ctx, req, reply, q.ids, q.timeoutMs);
  });

  app.get("/api/events", async (req, reply) => {
    for (const k of Object.keys(req.query as object)) if (k !== "token") throw new HttpError(400, "BadRequest", `unknown query parameter '${k}'`);
    const s = openStream(req, reply);
    const stop = ctx.states.subscribe((body) => s.send("states", body));
    await s.gone;
    stop();
    s.end();
  });
}

