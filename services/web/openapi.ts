/**
 * The OpenAPI 3 description served at /api/openapi.json. docs/web-api.md is
 * the prose; this is the machine-readable side of the same contract.
 */
const selectors = [
  { name: "workflow", in: "query", schema: { type: "string" }, description: "workflow name, exact" },
  { name: "name", in: "query", schema: { type: "string" }, description: "name contains (literal)" },
  { name: "state", in: "query", schema: { type: "array", items: { type: "string" } }, style: "form", explode: true, description: "one or more states (repeat or comma-separate)" },
  { name: "id", in: "query", schema: { type: "string" }, description: "job id prefix" },
  { name: "tag", in: "query", schema: { type: "array", items: { type: "string" } }, style: "form", explode: true, description: "KEY=VALUE, repeatable: jobs with all these tags" },
];
const idParam = { name: "id", in: "path", required: true, schema: { type: "string" }, description: "job id or unique prefix" };
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ content: { "application/json": { schema } } });
const ok = (schema: unknown, description = "OK") => ({ description, ...json(schema) });
const errors = {
  "400": { description: "BadRequest", ...json(ref("Error")) },
  "401": { description: "Unauthorized", ...json(ref("Error")) },
  "404": { description: "NotFound", ...json(ref("Error")) },
  "409": { description: "Conflict", ...json(ref("Error")) },
};
const obj = (properties: Record<string, unknown>, required: string[] = []) => ({ type: "object", properties, required });

export function openApi(version: string): Record<string, unknown> {
  return {
    openapi: "3.0.3",
    info: { title: "balsam web", version, description: "The JSON API of one Balsam database; docs/web-api.md is the prose." },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" }, query: { type: "apiKey", in: "query", name: "token" } },
      schemas: {
        Error: obj({ error: obj({ code: { type: "string", enum: ["BadRequest", "Unauthorized", "NotFound", "Conflict", "TooLarge", "Internal"] }, message: { type: "string" } }, ["code", "message"]) }, ["error"]),
        Job: obj({ _id: { type: "string" }, name: { type: "string" }, workflow: { type: "string" }, application: { type: "string" }, state: { type: "string" }, stateHistory: { type: "array", items: obj({ at: { type: "string", format: "date-time" }, state: { type: "string" }, message: { type: "string" } }) }, data: { type: "object" }, parents: { type: "array", items: { type: "string" } }, workdir: { type: "string" }, workingDirectory: { type: "string", description: "the directory its launcher runs it in, known before it ran" } }),
        JobSpec: obj(
          {
            name: { type: "string" }, workflow: { type: "string" }, application: { type: "string" }, args: { type: "string" }, description: { type: "string" }, parents: { type: "array", items: { type: "string" } },
            data: { type: "object" }, numNodes: { type: "integer" }, ranksPerNode: { type: "integer" }, threadsPerRank: { type: "integer" }, threadsPerCore: { type: "integer" }, cpuAffinity: { type: "string", enum: ["none", "depth"] },
            nodePackingCount: { type: "integer" }, gpusPerRank: { type: "integer", minimum: 0 }, coscheduleNumNodes: { type: "integer" }, wallTimeMinutes: { type: "number" }, mpiFlags: { type: "string" }, environVars: { type: "object", additionalProperties: { type: "string" } }, tags: { type: "object", additionalProperties: { type: "string" } },
            inputFiles: { type: "string" }, stageInUrl: { type: "string" }, stageOutFiles: { type: "string" }, stageOutUrl: { type: "string" }, postErrorHandler: { type: "boolean" }, postTimeoutHandler: { type: "boolean" },
            autoTimeoutRetry: { type: "boolean" }, fastFailRetries: { type: "integer", minimum: 0 }, waitForParents: { type: "boolean" }, preprocess: { type: "string" }, postprocess: { type: "string" },
          },
          ["name", "workflow", "application"],
        ),
        States: obj({ total: { type: "integer" }, byState: { type: "object", additionalProperties: { type: "integer" } }, byWorkflow: { type: "object", additionalProperties: { type: "object", additionalProperties: { type: "integer" } } } }),
        App: obj({ name: { type: "string" }, executable: { type: "string" }, preprocess: { type: "string" }, postprocess: { type: "string" }, envscript: { type: "string" }, description: { type: "string" } }, ["name", "executable"]),
      },
    },
    security: [{ bearer: [] }, { query: [] }],
    paths: {
      "/api/jobs": {
        get: { summary: "A page of jobs, in the order the database keeps them (not sorted); pass `next` back as `after`", parameters: [...selectors, { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 1000, default: 50 } }, { name: "after", in: "query", schema: { type: "string" } }], responses: { "200": ok(obj({ jobs: { type: "array", items: ref("Job") }, next: { type: "string", nullable: true } })), ...errors } },
        post: { summary: "Add one job (`spawnedBy`: the job that spawned it, for its first history line)", security: [{ bearer: [] }], requestBody: { required: true, ...json({ allOf: [ref("JobSpec"), obj({ spawnedBy: { type: "string" } })] }) }, responses: { "201": ok(ref("Job"), "Created"), ...errors } },
        patch: { summary: "Set plain fields on every matching job (a selector is required)", security: [{ bearer: [] }], parameters: selectors, requestBody: { required: true, ...json(obj({ set: { type: "object" } }, ["set"])) }, responses: { "200": ok(obj({ modified: { type: "integer" } })), ...errors } },
        delete: { summary: "Delete matching jobs (a selector is required; running jobs need force=true)", security: [{ bearer: [] }], parameters: [...selectors, { name: "force", in: "query", schema: { type: "boolean" } }], responses: { "200": ok(obj({ deleted: { type: "integer" } })), ...errors } },
      },
      "/api/jobs/count": { get: { summary: "Count matching jobs", parameters: selectors, responses: { "200": ok(obj({ count: { type: "integer" } })), ...errors } } },
      "/api/jobs/states": { get: { summary: "Counts per state and per workflow and state", parameters: selectors, responses: { "200": ok(ref("States")), ...errors } } },
      "/api/jobs/bulk": { post: { summary: "Add up to 10,000 jobs, all or nothing", security: [{ bearer: [] }], requestBody: { required: true, ...json(obj({ jobs: { type: "array", items: ref("JobSpec"), maxItems: 10000 } }, ["jobs"])) }, responses: { "201": ok(obj({ jobs: { type: "array", items: ref("Job") } }), "Created"), "413": { description: "TooLarge", ...json(ref("Error")) }, ...errors } } },
      "/api/jobs/{id}": {
        get: { summary: "One job with its state history", parameters: [idParam], responses: { "200": ok(ref("Job")), ...errors } },
        patch: { summary: "Set fields and/or the state of one job", security: [{ bearer: [] }], parameters: [idParam], requestBody: { required: true, ...json(obj({ set: { type: "object" }, state: { type: "string" }, message: { type: "string" } })) }, responses: { "200": ok(ref("Job")), ...errors } },
      },
      "/api/reports/{kind}": { get: { summary: "utilization (jobs running) or throughput (jobs finished, cumulative) as {times, values}, or errors (failed jobs by last error line) as {errors}", parameters: [{ name: "kind", in: "path", required: true, schema: { type: "string", enum: ["utilization", "throughput", "errors"] } }, ...selectors, { name: "since", in: "query", schema: { type: "string", format: "date-time" } }], responses: { "200": ok(obj({ kind: { type: "string" }, times: { type: "array", items: { type: "string", format: "date-time" } }, values: { type: "array", items: { type: "integer" } }, errors: { type: "array", items: obj({ line: { type: "string" }, count: { type: "integer" }, examples: { type: "array", items: { type: "string" } } }) } })), ...errors } } },
      "/api/jobs/{id}/output": { get: { summary: "The last lines of the job's output file", parameters: [idParam, { name: "lines", in: "query", schema: { type: "integer", minimum: 1, maximum: 10000, default: 100 } }], responses: { "200": ok(obj({ path: { type: "string" }, text: { type: "string" } })), ...errors } } },
      "/api/jobs/{id}/children": { get: { summary: "The job's direct children", parameters: [idParam], responses: { "200": ok(obj({ jobs: { type: "array", items: ref("Job") } })), ...errors } } },
      "/api/jobs/{id}/kill": { post: { summary: "Kill the job (and by default everything depending on it)", security: [{ bearer: [] }], parameters: [idParam], requestBody: { required: false, ...json(obj({ recursive: { type: "boolean", default: true } })) }, responses: { "200": ok(obj({ killed: { type: "array", items: { type: "string" } } })), ...errors } } },
      "/api/jobs/{id}/rerun": { post: { summary: "Run a final job again (as `balsam rerun`); children it failed are re-armed", security: [{ bearer: [] }], parameters: [idParam], requestBody: { required: false, ...json(obj({ restart: { type: "boolean", default: false } })) }, responses: { "200": ok(obj({ rerun: { type: "array", items: { type: "string" } }, rearmed: { type: "array", items: { type: "string" } }, skipped: { type: "array", items: obj({ id: { type: "string" }, reason: { type: "string" } }) } })), ...errors } } },
      "/api/jobs/{id}/parents": {
        post: { summary: "Add a parent (dependency)", security: [{ bearer: [] }], parameters: [idParam], requestBody: { required: true, ...json(obj({ parent: { type: "string" } }, ["parent"])) }, responses: { "200": ok(obj({ parent: ref("Job"), child: ref("Job") })), ...errors } },
        put: { summary: "Replace the parents (0.x's set_parents); a job not started waits or is queued as they say", security: [{ bearer: [] }], parameters: [idParam], requestBody: { required: true, ...json(obj({ parents: { type: "array", items: { type: "string" } } }, ["parents"])) }, responses: { "200": ok(ref("Job")), ...errors } },
      },
      "/api/results": {
        get: { summary: "Server-sent events: each id's result once, as it finishes", parameters: [{ name: "ids", in: "query", required: true, schema: { type: "string" }, description: "comma-separated job ids" }, { name: "timeoutMs", in: "query", schema: { type: "integer" } }], responses: { "200": { description: "text/event-stream of `result` events, then one `end`", content: { "text/event-stream": { schema: { type: "string" } } } }, ...errors } },
        post: { summary: "As GET, with the ids in the body", security: [{ bearer: [] }], requestBody: { required: true, ...json(obj({ ids: { type: "array", items: { type: "string" } }, timeoutMs: { type: "integer" } }, ["ids"])) }, responses: { "200": { description: "text/event-stream", content: { "text/event-stream": { schema: { type: "string" } } } }, ...errors } },
      },
      "/api/events": { get: { summary: "Server-sent events: `states` (as /api/jobs/states) whenever the counts change, at most every 500 ms", responses: { "200": { description: "text/event-stream", content: { "text/event-stream": { schema: { type: "string" } } } }, ...errors } } },
      "/api/apps": {
        get: { summary: "Every app", responses: { "200": ok(obj({ apps: { type: "array", items: ref("App") } })), ...errors } },
        post: { summary: "Add an app", security: [{ bearer: [] }], requestBody: { required: true, ...json(ref("App")) }, responses: { "201": ok(ref("App"), "Created"), ...errors } },
      },
      "/api/launchers": { get: { summary: "Launchers recorded as running", responses: { "200": ok(obj({ launchers: { type: "array", items: obj({ id: { type: "string" }, host: { type: "string" }, pid: { type: "integer" }, mode: { type: "string" }, workflows: { type: "array", items: { type: "string" } }, startedAt: { type: "string", format: "date-time" }, nodes: { type: "array", items: { type: "string" } }, inFlight: { type: "integer", nullable: true }, lastHeartbeat: { type: "string", format: "date-time" }, alive: { type: "boolean" } }) } })), ...errors } } },
      "/api/launches": { get: { summary: "Launcher batch jobs, as `balsam ls queues`", responses: { "200": ok(obj({ launches: { type: "array", items: { type: "object" } }, errors: { type: "array", items: { type: "string" } } })), ...errors } } },
      "/api/throughput": { get: { summary: "Jobs finished per minute", parameters: [{ name: "minutes", in: "query", schema: { type: "integer", minimum: 1, maximum: 1440, default: 180 } }], responses: { "200": ok(obj({ perMinute: { type: "array", items: obj({ t: { type: "string", format: "date-time" }, finished: { type: "integer" } }) }, complete: { type: "boolean" } })), ...errors } } },
      "/api/health": { get: { summary: "Liveness and version", responses: { "200": ok(obj({ ok: { type: "boolean" }, version: { type: "string" } })), ...errors } } },
      "/api/openapi.json": { get: { summary: "This document", responses: { "200": ok({ type: "object" }) } } },
      "/metrics": { get: { summary: "Prometheus text format", responses: { "200": { description: "text/plain; version=0.0.4", content: { "text/plain": { schema: { type: "string" } } } }, "401": errors["401"] } } },
    },
  };
}
