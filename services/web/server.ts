import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import Fastify, { type FastifyInstance } from "fastify";
import fastifyStatic from "@fastify/static";
import type { Balsam } from "../../libs/client/index.js";
import { HttpError, errorBody, toHttpError } from "./errors.js";
import { FinishedFeed, JobCounter, StatesPoller } from "./live.js";
import { createMetrics } from "./metrics.js";
import { registerJobRoutes } from "./jobs-routes.js";
import { registerStreamRoutes } from "./stream-routes.js";
import { registerMiscRoutes } from "./misc-routes.js";
import { registerReportRoutes } from "./report-routes.js";
import { tokenMatches } from "./token.js";
import type { WebContext } from "./context.js";

const here = dirname(fileURLToPath(import.meta.url));

/** The dashboard's files: beside this module in the source tree, or found from dist/. */
function publicDir(): string {
  const candidates = [join(here, "public"), resolve(here, "../../../services/web/public")];
  const dir = candidates.find((d) => existsSync(join(d, "index.html")));
  if (!dir) throw new Error(`the dashboard's files are missing (looked in ${candidates.join(", ")})`);
  return dir;
}

function packageVersion(): string {
  for (const p of [resolve(here, "../../package.json"), resolve(here, "../../../package.json")]) {
    try {
      const v = (JSON.parse(readFileSync(p, "utf8")) as { name?: string; version?: string });
      if (v.name === "balsam-mq" && v.version) return v.version;
    } catch {
      // try the next candidate
    }
  }
  return "unknown";
}

/**
 * The page's policy: scripts, styles and connections from this server only,
 * no inline script, no framing. With job names rendered as text this makes
 * an injected `<script>` inert twice over.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** Bodies up to 64 MiB: 10,000 job specs with long args fit; the job count is checked on its own (413). */
const BODY_LIMIT_BYTES = 64 * 1024 * 1024;

export interface WebServerOptions {
  balsam: Balsam;
  token: string;
  /** Default: the settings' lease TTL, else 180 s. */
  leaseTtlMs?: number;
}

export interface WebServer {
  app: FastifyInstance;
  ctx: WebContext;
  /** Starts listening; resolves with the URL (port 0 picks a free one). */
  listen(host: string, port: number): Promise<string>;
  /** Stops the server, its streams and subscriptions; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Which requests need the token, and where it may come from. Decided on the
 * route the router matched, not on the raw URL: `/%61pi/jobs` reaches
 * `/api/jobs` and must not pass as a static file. Only the dashboard's own
 * files, which hold no data, are served without the token.
 */
function authorize(token: string, method: string, route: string | undefined, headers: Record<string, unknown>, query: unknown): boolean {
  if (route !== undefined && !route.startsWith("/api") && route !== "/metrics") return true;
  const auth = headers.authorization;
  const bearer = typeof auth === "string" && auth.startsWith("Bearer ") ? auth.slice(7).trim() : undefined;
  if (tokenMatches(token, bearer)) return true;
  // A query token serves EventSource and links; a state change needs the header, so another site's page cannot make one.
  if (method !== "GET" && method !== "HEAD") return false;
  const q = (query as { token?: unknown }).token;
  return typeof q === "string" && tokenMatches(token, q);
}

export async function createWebServer(opts: WebServerOptions): Promise<WebServer> {
  const { balsam } = opts;
  const feed = await FinishedFeed.open(balsam);
  const counter = new JobCounter(balsam);
  const states = new StatesPoller(counter);
  const leaseTtlMs = opts.leaseTtlMs ?? balsam.settings?.leaseTtlMs ?? 180_000;
  const ctx: WebContext = { balsam, token: opts.token, feed, states, metrics: createMetrics(balsam, feed, counter, { leaseTtlMs }), leaseTtlMs, version: packageVersion() };

  const app = Fastify({ logger: false, bodyLimit: BODY_LIMIT_BYTES, forceCloseConnections: true, routerOptions: { ignoreTrailingSlash: true } });

  // An empty JSON body is no body (a client posting `kill` with its defaults sends none), not a 400.
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, text, done) => {
    const raw = typeof text === "string" ? text : text.toString("utf8");
    if (raw.trim() === "") return done(null, undefined);
    try {
      done(null, JSON.parse(raw));
    } catch {
      done(new HttpError(400, "BadRequest", "the body is not valid JSON"), undefined);
    }
  });

  app.addHook("onRequest", async (req, reply) => {
    reply.header("Content-Security-Policy", CONTENT_SECURITY_POLICY);
    reply.header("X-Content-Type-Options", "nosniff");
    // The token can be in the page's URL: never send it on as a referrer.
    reply.header("Referrer-Policy", "no-referrer");
    reply.header("X-Frame-Options", "DENY");
    if (!authorize(ctx.token, req.method, req.routeOptions.url, req.headers, req.query)) {
      const msg = req.method === "GET" || req.method === "HEAD" ? "missing or wrong token" : "missing or wrong token (state changes need the header Authorization: Bearer <token>)";
      return reply.code(401).send(errorBody(new HttpError(401, "Unauthorized", msg)));
    }
  });

  app.setErrorHandler((err, _req, reply) => {
    const e = toHttpError(err);
    if (e.status >= 500) process.stderr.write(`balsam web: ${e.message}\n`);
    return reply.code(e.status).send(errorBody(e));
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send(errorBody(new HttpError(404, "NotFound", `no route ${req.method} ${req.url.split("?")[0]}`))));

  registerJobRoutes(app, ctx);
  registerStreamRoutes(app, ctx);
  registerMiscRoutes(app, ctx);
  registerReportRoutes(app, ctx);

  await app.register(fastifyStatic, { root: publicDir(), prefix: "/", index: ["index.html"], wildcard: false, cacheControl: false });
  const uplotDir = dirname(createRequire(import.meta.url).resolve("uplot"));
  await app.register(fastifyStatic, { root: uplotDir, prefix: "/vendor/uplot/", decorateReply: false, allowedPath: (p) => p === "/uPlot.iife.min.js" || p === "/uPlot.min.css" });

  let closed = false;
  return {
    app,
    ctx,
    async listen(host, port) {
      await app.listen({ host, port });
      const addr = app.server.address();
      const actual = typeof addr === "object" && addr ? addr.port : port;
      const shown = host === "0.0.0.0" || host === "::" ? hostname() : host.includes(":") ? `[${host}]` : host;
      return `http://${shown}:${actual}`;
    },
    async close() {
      if (closed) return;
      closed = true;
      states.close();
      await app.close();
      await feed.close();
    },
  };
}
