import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { JOB_STATES, isJobState, parseTags, jobOutFileName, workdirFor, type Job, type JobFilter, type JobSpec, type JobState } from "../../libs/client/index.js";
import { pageJobs } from "../../libs/store/views.js";
import { HttpError } from "./errors.js";
import { statesOf } from "./live.js";
import { BulkSchema, JobCreateSchema, JobSpecSchema, KillSchema, RerunSchema, MAX_BULK_JOBS, MAX_PAGE, ParentSchema, ParentsSchema, PatchManySchema, PatchOneSchema, parse } from "./schemas.js";
import type { WebContext } from "./context.js";

type Query = Record<string, string | string[] | undefined>;

const SELECTORS = ["workflow", "name", "state", "id", "tag"] as const;

function one(q: Query, key: string): string | undefined {
  const v = q[key];
  if (Array.isArray(v)) throw new HttpError(400, "BadRequest", `query parameter '${key}' given more than once`);
  return v;
}

/** Refuses query parameters a route does not know: a typo (`wf=`) must not silently widen a delete. */
function onlyKnown(q: Query, allowed: readonly string[]): void {
  for (const k of Object.keys(q)) {
    if (k === "token") continue;
    if (!allowed.includes(k)) throw new HttpError(400, "BadRequest", `unknown query parameter '${k}' (known: ${allowed.join(", ")})`);
  }
}

/** The `balsam ls` selectors of a query string. */
export function selectorsOf(q: Query, extra: readonly string[] = []): JobFilter {
  onlyKnown(q, [...SELECTORS, ...extra]);
  const raw = q.state;
  const states = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).flatMap((s) => s.split(",")).map((s) => s.trim()).filter(Boolean);
  for (const s of states) {
    if (!isJobState(s)) throw new HttpError(400, "BadRequest", `unknown state '${s}' (states: ${JOB_STATES.join(", ")})`);
  }
  const f: JobFilter = {};
  const workflow = one(q, "workflow");
  const name = one(q, "name");
  const id = one(q, "id");
  if (workflow !== undefined && workflow !== "") f.workflow = workflow;
  if (name !== undefined && name !== "") f.name = name;
  if (id !== undefined && id !== "") f.id = id;
  if (states.length) f.state = states.length === 1 ? (states[0] as JobState) : (states as JobState[]);
  // `tag=k=v`, repeatable (all must match), as `balsam ls --tag`.
  const tagWords = [q.tag ?? []].flat().filter((t) => t !== "");
  try {
    f.tags = parseTags(tagWords);
  } catch (err) {
    throw new HttpError(400, "BadRequest", (err as Error).message);
  }
  return f;
}

/**
 * Cursors are opaque to clients: today an offset into the server's order
 * (see pageJobs for why not a keyset on `_id`), so that can change without
 * changing the contract.
 */
function encodeCursor(offset: number): string {
  return Buffer.from(JSON.stringify({ o: offset })).toString("base64url");
}

function decodeCursor(c: string | undefined): number {
  if (c === undefined || c === "") return 0;
  try {
    const v = JSON.parse(Buffer.from(c, "base64url").toString("utf8")) as { o?: unknown };
    if (typeof v.o === "number" && Number.isSafeInteger(v.o) && v.o >= 0) return v.o;
  } catch {
    // fall through to the one error below
  }
  throw new HttpError(400, "BadRequest", `'after' is not a cursor this server gave: '${c.slice(0, 40)}'`);
}

function hasSelector(f: JobFilter): boolean {
  return f.workflow !== undefined || f.name !== undefined || f.id !== undefined || f.state !== undefined || f.tags !== undefined;
}

function intParam(q: Query, key: string, dflt: number, min: number, max: number): number {
  const v = one(q, key);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) throw new HttpError(400, "BadRequest", `${key} must be a whole number, not '${v}'`);
  const n = Number(v);
  if (n < min || n > max) throw new HttpError(400, "BadRequest", `${key} must be from ${min} to ${max}, not ${n}`);
  return n;
}

/**
 * What the API shows of a job: everything but the launchers' bookkeeping,
 * and `workingDirectory`, the directory its launcher runs it in — `workdir`
 * once it ran, else the one it will get (0.x computed `working_directory`
 * for any job); "" when the server knows no database directory.
 */
export function jobView(j: Job, dbPath: string | undefined): Record<string, unknown> {
  const view: Record<string, unknown> = { ...j };
  delete view.writeToken;
  delete view.killRequestedAt;
  let dir = j.workdir;
  try {
    if (!dir && dbPath) dir = workdirFor(dbPath, j);
  } catch {
    // A job stored with a workflow no directory can have: it has none yet.
  }
  view.workingDirectory = dir;
  return view;
}

/** The lease a job's own script sends (X-Balsam-Lease, from BALSAM_JOB_LEASE): with it, it writes its job as its launcher (DESIGN invariant 3). */
function leaseOf(req: FastifyRequest): string {
  const header = req.headers["x-balsam-lease"];
  return typeof header === "string" ? header : "";
}

/** The last `lines` lines of a file, reading at most its last 4 MiB. */
async function tail(path: string, lines: number): Promise<string> {
  const size = (await stat(path)).size;
  const want = Math.min(size, 4 * 1024 * 1024);
  const fh = await open(path, "r");
  try {
    const buf = Buffer.alloc(want);
    await fh.read(buf, 0, want, size - want);
    const text = buf.toString("utf8");
    const parts = text.split("\n");
    if (parts[parts.length - 1] === "") parts.pop();
    return parts.slice(-lines).join("\n");
  } finally {
    await fh.close();
  }
}

function body(b: unknown): unknown {
  return b === undefined || b === null ? {} : b;
}

export function registerJobRoutes(app: FastifyInstance, ctx: WebContext): void {
  const { balsam } = ctx;
  const view = (j: Job): Record<string, unknown> => jobView(j, balsam.dbPath);

  app.get("/api/jobs", async (req) => {
    const q = req.query as Query;
    const f = selectorsOf(q, ["limit", "after"]);
    const limit = intParam(q, "limit", 50, 1, MAX_PAGE);
    const skip = decodeCursor(one(q, "after"));
    const page = await pageJobs(balsam.store, f, { limit, skip });
    return { jobs: page.jobs.map(view), next: page.more ? encodeCursor(skip + page.jobs.length) : null };
  });

  app.get("/api/jobs/count", async (req) => ({ count: await balsam.jobs.filter(selectorsOf(req.query as Query)).count() }));

  app.get("/api/jobs/states", async (req) => statesOf(balsam, selectorsOf(req.query as Query)));

  app.get("/api/jobs/:id", async (req) => {
    onlyKnown(req.query as Query, []);
    return view(await balsam.jobs.get((req.params as { id: string }).id));
  });

  app.get("/api/jobs/:id/output", async (req) => {
    const q = req.query as Query;
    onlyKnown(q, ["lines"]);
    const lines = intParam(q, "lines", 100, 1, 10_000);
    const job = await balsam.jobs.get((req.params as { id: string }).id);
    if (!job.workdir) throw new HttpError(404, "NotFound", `job ${job._id} has not run yet: it has no output file`);
    const path = join(job.workdir, jobOutFileName(job.name));
    try {
      return { path, text: await tail(path, lines) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new HttpError(404, "NotFound", `job ${job._id} has no output file at ${path}`);
      throw err;
    }
  });

  app.get("/api/jobs/:id/children", async (req) => {
    onlyKnown(req.query as Query, []);
    const job = await balsam.jobs.get((req.params as { id: string }).id);
    return { jobs: (await balsam.jobs.children(job._id)).map(view) };
  });

  app.post("/api/jobs", async (req, reply) => {
    onlyKnown(req.query as Query, []);
    const { spawnedBy, ...spec } = parse(JobCreateSchema, body(req.body), "body");
    const job = await balsam.jobs.add(spec as JobSpec, { spawnedBy });
    return reply.code(201).send(view(job));
  });

  app.post("/api/jobs/bulk", async (req, reply) => {
    onlyKnown(req.query as Query, []);
    const b = parse(BulkSchema, body(req.body), "body");
    if (b.jobs.length > MAX_BULK_JOBS) throw new HttpError(413, "TooLarge", `at most ${MAX_BULK_JOBS} jobs per bulk add, not ${b.jobs.length}: split the list`);
    if (b.jobs.length === 0) throw new HttpError(400, "BadRequest", "body.jobs is empty");
    const specs = b.jobs.map((s, i) => parse(JobSpecSchema, s, `body.jobs[${i}]`) as JobSpec);
    const jobs = await balsam.jobs.addMany(specs);
    return reply.code(201).send({ jobs: jobs.map(view) });
  });

  app.patch("/api/jobs/:id", async (req) => {
    onlyKnown(req.query as Query, []);
    const b = parse(PatchOneSchema, body(req.body), "body");
    const id = (req.params as { id: string }).id;
    let job = await balsam.jobs.get(id);
    const lease = leaseOf(req);
    if (b.set && Object.keys(b.set).length) job = await balsam.jobs.modify(job._id, b.set as Partial<Job>, { lease });
    if (b.state) job = await balsam.jobs.setState(job._id, b.state, b.message ?? "set through the web API", { lease });
    return view(job);
  });

  app.patch("/api/jobs", async (req) => {
    const f = selectorsOf(req.query as Query);
    if (!hasSelector(f)) throw new HttpError(400, "BadRequest", "give at least one selector (workflow, name, state, id) to change several jobs");
    const b = parse(PatchManySchema, body(req.body), "body");
    if (Object.keys(b.set).length === 0) throw new HttpError(400, "BadRequest", "body.set is empty");
    return { modified: await balsam.jobs.filter(f).update(b.set as Partial<Job>) };
  });

  app.post("/api/jobs/:id/kill", async (req) => {
    onlyKnown(req.query as Query, []);
    const b = parse(KillSchema, body(req.body), "body");
    return { killed: await balsam.jobs.kill((req.params as { id: string }).id, { recursive: b.recursive ?? true }) };
  });

  app.post("/api/jobs/:id/rerun", async (req) => {
    onlyKnown(req.query as Query, []);
    const b = parse(RerunSchema, body(req.body), "body");
    const r = await balsam.jobs.rerun((req.params as { id: string }).id, { restart: b.restart === true, message: "rerun through the web API" });
    return { rerun: r.rerun, rearmed: r.rearmed, skipped: r.skipped };
  });

  app.post("/api/jobs/:id/parents", async (req) => {
    onlyKnown(req.query as Query, []);
    const b = parse(ParentSchema, body(req.body), "body");
    const r = await balsam.jobs.addDependency(b.parent, (req.params as { id: string }).id);
    return { parent: view(r.parent), child: view(r.child) };
  });

  // 0.x's `job.set_parents(parents)`: the whole list, replaced.
  app.put("/api/jobs/:id/parents", async (req) => {
    onlyKnown(req.query as Query, []);
    const b = parse(ParentsSchema, body(req.body), "body");
    return view(await balsam.jobs.setParents((req.params as { id: string }).id, b.parents, { lease: leaseOf(req) }));
  });

  app.delete("/api/jobs", async (req) => {
    const q = req.query as Query;
    const f = selectorsOf(q, ["force"]);
    const force = one(q, "force");
    if (force !== undefined && force !== "true" && force !== "false") throw new HttpError(400, "BadRequest", `force must be true or false, not '${force}'`);
    if (!hasSelector(f)) throw new HttpError(400, "BadRequest", "give at least one selector (workflow, name, state, id): refusing to delete every job");
    return { deleted: await balsam.jobs.filter(f).delete({ evenIfRunning: force === "true" }) };
  });
}
