import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../support/context.js";
import { useCliFixture } from "../support/fixture.js";
import { startLauncher } from "../support/launcher.js";
import { api, readSse, startWeb, type SseEvent, type WebProc } from "../support/web.js";
import { FINISHED_CHANNEL, parseFinished, type Job } from "../../libs/client/index.js";

const f = useCliFixture("webapi");
const { script } = f;
let web: WebProc;

const count = async (wf: string) => f.balsam.jobs.filter({ workflow: wf }).count();

describe("balsam web: the REST API", () => {
  before(async () => {
    await f.balsam.apps.add({ name: "echo", executable: script("echo.sh", 'echo "line one"; echo "DH-OUTPUT: $1"') });
    web = await startWeb(f.db.env);
  });
  after(async () => {
    assert.equal(await web.stop(), 0, web.output());
  });

  test("web.json and web-token are 0600 and name this server; the URL is on 127.0.0.1", () => {
    assert.match(web.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const info = JSON.parse(readFileSync(join(f.db.dir, "web.json"), "utf8")) as { url: string; token: string; pid: number };
    assert.deepEqual([info.url, info.token, info.pid], [web.url, web.token, web.child.pid]);
    assert.equal(statSync(join(f.db.dir, "web.json")).mode & 0o777, 0o600);
    assert.equal(statSync(join(f.db.dir, "web-token")).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(f.db.dir, "web-token"), "utf8").trim(), web.token);
  });

  test("a missing or wrong token is 401 and changes nothing; a query token does not allow a state change", async () => {
    const spec = { name: "nope", workflow: "AUTH", application: "echo" };
    for (const token of [null, "0".repeat(48), web.token.slice(1)]) {
      const r = await api(web, "POST", "/api/jobs", { body: spec, token });
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, "Unauthorized");
      assert.equal((await api(web, "GET", "/api/jobs", { token })).status, 401);
      assert.equal((await api(web, "GET", "/metrics", { token })).status, 401);
    }
    // The router decodes %61 to "a": the token check must see the route, not the raw path.
    for (const [method, path] of [["POST", "/%61pi/jobs"], ["GET", "/%61pi/jobs"], ["GET", "/%6Detrics"], ["GET", "/api/nothing"]] as const) {
      const r = await api(web, method, path, { body: method === "POST" ? spec : undefined, token: null });
      assert.equal(r.status, 401, `${method} ${path}`);
    }
    const viaQuery = await api(web, "POST", `/api/jobs?token=${web.token}`, { body: spec, token: null });
    assert.equal(viaQuery.status, 401);
    const viaCookie = await api(web, "POST", "/api/jobs/bulk", { body: { jobs: [spec] }, token: null, headers: { cookie: `token=${web.token}` } });
    assert.equal(viaCookie.status, 401);
    const del = await api(web, "DELETE", `/api/jobs?workflow=AUTH&token=${web.token}`, { token: null });
    assert.equal(del.status, 401);
    assert.equal(await count("AUTH"), 0);
    // GET takes the token in the query (EventSource cannot send headers).
    assert.equal((await api(web, "GET", `/api/jobs/count?workflow=AUTH&token=${web.token}`, { token: null })).body.count, 0);
  });

  test("health, openapi, the page with its CSP", async () => {
    assert.deepEqual((await api(web, "GET", "/api/health")).body.ok, true);
    const spec = (await api(web, "GET", "/api/openapi.json")).body;
    assert.equal(spec.openapi, "3.0.3");
    for (const p of ["/api/jobs", "/api/jobs/{id}", "/api/jobs/bulk", "/api/results", "/api/events", "/api/launchers", "/api/launches", "/api/throughput", "/metrics"]) {
      assert.ok(spec.paths[p], `openapi lacks ${p}`);
    }
    const page = await fetch(web.url + "/");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    assert.doesNotMatch(page.headers.get("content-security-policy") ?? "", /unsafe-inline/);
    const missing = await api(web, "GET", "/api/nothing-here");
    assert.deepEqual([missing.status, missing.body.error.code], [404, "NotFound"]);
  });

  test("apps: add, list, duplicate, unknown field", async () => {
    const r = await api(web, "POST", "/api/apps", { body: { name: "web-app", executable: "/bin/true", description: "d" } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.name, "web-app");
    const list = (await api(web, "GET", "/api/apps")).body.apps.map((a: { name: string }) => a.name);
    assert.ok(list.includes("web-app") && list.includes("echo"));
    assert.equal((await api(web, "POST", "/api/apps", { body: { name: "web-app", executable: "/bin/true" } })).status, 409);
    const bad = await api(web, "POST", "/api/apps", { body: { name: "x", executable: "/bin/true", exe: 1 } });
    assert.deepEqual([bad.status, bad.body.error.message], [400, "body: unknown field 'exe'"]);
  });

  test("add one and in bulk; list in pages; count; states; get by prefix", async () => {
    const one = await api<Job>(web, "POST", "/api/jobs", { body: { name: "solo", workflow: "PAGE", application: "echo", args: "1", numNodes: 2 } });
    assert.equal(one.status, 201, JSON.stringify(one.body));
    assert.deepEqual([one.body.name, one.body.state, one.body.numNodes], ["solo", "READY", 2]);
    const bulk = await api(web, "POST", "/api/jobs/bulk", { body: { jobs: Array.from({ length: 24 }, (_, i) => ({ name: `b${i}`, workflow: "PAGE", application: "echo", args: String(i) })) } });
    assert.equal(bulk.status, 201);
    assert.equal(bulk.body.jobs.length, 24);
    assert.equal(await count("PAGE"), 25);

    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const q: string = `/api/jobs?workflow=PAGE&limit=7${after ? `&after=${after}` : ""}`;
      const r = await api(web, "GET", q);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(r.body.jobs.length <= 7);
      seen.push(...r.body.jobs.map((j: Job) => j._id));
      after = r.body.next;
      pages++;
    } while (after);
    assert.equal(pages, 4);
    assert.equal(new Set(seen).size, 25);

    assert.equal((await api(web, "GET", "/api/jobs/count?workflow=PAGE&name=b1")).body.count, 11); // b1, b10..b19
    const states = (await api(web, "GET", "/api/jobs/states?workflow=PAGE")).body;
    assert.deepEqual(states, { total: 25, byState: { READY: 25 }, byWorkflow: { PAGE: { READY: 25 } } });
    assert.equal((await api(web, "GET", "/api/jobs/count?state=READY,FAILED&workflow=PAGE")).body.count, 25);
    assert.equal((await api(web, "GET", "/api/jobs/count?state=READY&state=FAILED&workflow=PAGE")).body.count, 25);

    const got = await api<Job>(web, "GET", `/api/jobs/${one.body._id.slice(0, 10)}`);
    assert.equal(got.body._id, one.body._id);
    assert.deepEqual(got.body.stateHistory.map((h) => h.state), ["CREATED", "READY"]);
    assert.equal(typeof got.body.createdAt, "string");
    assert.ok(!("writeToken" in got.body));
  });

  test("bad input: unknown field, bad state, bad id, ambiguous prefix, oversize bulk, bad cursor, unknown parameter — nothing changed", async () => {
    const before = await count("BAD");
    const cases: Array<[string, string, unknown, number, RegExp]> = [
      ["POST", "/api/jobs", { name: "x", workflow: "BAD", application: "echo", nodes: 3 }, 400, /unknown field 'nodes'/],
      ["POST", "/api/jobs", { name: "x", workflow: "BAD", application: "echo", numNodes: "3" }, 400, /numNodes/],
      ["POST", "/api/jobs", { name: "x", workflow: "BAD", application: "echo", gpusPerRank: -1 }, 400, /gpusPerRank/],
      ["POST", "/api/jobs", { name: "x", workflow: "BAD", application: "no-such-app" }, 404, /no app named 'no-such-app'/],
      ["POST", "/api/jobs", { name: "x", workflow: "BAD" }, 400, /application/],
      ["POST", "/api/jobs", { name: "x", workflow: "bad wf/!", application: "echo" }, 400, /./],
      ["POST", "/api/jobs/bulk", { jobs: [{ name: "ok", workflow: "BAD", application: "echo" }, { name: "x", workflow: "BAD", application: "echo", bogus: 1 }] }, 400, /body\.jobs\[1\]: unknown field 'bogus'/],
      ["POST", "/api/jobs/bulk", { jobs: Array.from({ length: 10_001 }, (_, i) => ({ name: `o${i}`, workflow: "BAD", application: "echo" })) }, 413, /at most 10000 jobs/],
      ["GET", "/api/jobs?state=NOPE", undefined, 400, /unknown state 'NOPE'/],
      ["GET", "/api/jobs?wf=BAD", undefined, 400, /unknown query parameter 'wf'/],
      ["GET", "/api/jobs?limit=5000", undefined, 400, /limit must be from 1 to 1000/],
      ["GET", "/api/jobs?after=garbage", undefined, 400, /not a cursor/],
      ["GET", "/api/jobs/zzzz-not-an-id", undefined, 404, /no job whose id contains 'zzzz-not-an-id'/],
      ["DELETE", "/api/jobs", undefined, 400, /at least one selector/],
      ["DELETE", "/api/jobs?wf=BAD", undefined, 400, /unknown query parameter 'wf'/],
      ["PATCH", "/api/jobs", { set: { description: "x" } }, 400, /at least one selector/],
      ["PATCH", "/api/jobs?workflow=BAD", { set: { state: "FAILED" } }, 400, /unknown field 'state'/],
    ];
    for (const [method, path, body, status, msg] of cases) {
      const r = await api(web, method, path, { body });
      assert.equal(r.status, status, `${method} ${path}: ${JSON.stringify(r.body).slice(0, 300)}`);
      assert.match(r.body.error.message, msg, `${method} ${path}`);
      assert.doesNotMatch(r.body.error.message, /\n|at .*\.js:\d+/, "one line, no stack");
    }
    const notJson = await fetch(web.url + "/api/jobs", { method: "POST", headers: { authorization: `Bearer ${web.token}`, "content-type": "application/json" }, body: "{not json" });
    assert.equal(notJson.status, 400);
    assert.equal(await count("BAD"), before);

    // Ambiguous: a one-character prefix shared by two jobs.
    const ids = (await f.balsam.jobs.filter({ workflow: "PAGE" }).list()).map((j) => j._id);
    const prefix = [..."0123456789abcdef"].find((c) => ids.filter((id) => id.startsWith(c)).length >= 2)!;
    const amb = await api(web, "GET", `/api/jobs/${prefix}`);
    assert.equal(amb.status, 409);
    assert.match(amb.body.error.message, new RegExp(`id '${prefix}' matches`));
    const ambKill = await api(web, "POST", `/api/jobs/${prefix}/kill`, { body: {} });
    assert.equal(ambKill.status, 409);
    assert.equal(await f.balsam.jobs.filter({ workflow: "PAGE", state: "USER_KILLED" }).count(), 0);
  });

  test("patch one (fields, state), patch many, parents, children, kill, delete", async () => {
    const [a, b, c] = (await api(web, "POST", "/api/jobs/bulk", { body: { jobs: ["a", "b", "c"].map((n) => ({ name: n, workflow: "EDIT", application: "echo" })) } })).body.jobs as Job[];
    const p1 = await api<Job>(web, "PATCH", `/api/jobs/${a!._id}`, { body: { set: { description: "hello", numNodes: 3, gpusPerRank: 2 } } });
    assert.deepEqual([p1.status, p1.body.description, p1.body.numNodes, p1.body.gpusPerRank], [200, "hello", 3, 2]);
    const p2 = await api<Job>(web, "PATCH", `/api/jobs/${a!._id}`, { body: { state: "FAILED", message: "by hand" } });
    assert.equal(p2.body.state, "FAILED");
    assert.deepEqual(p2.body.stateHistory.at(-1)!.message, "by hand");
    const illegal = await api(web, "PATCH", `/api/jobs/${a!._id}`, { body: { state: "RUN_DONE" } });
    assert.equal(illegal.status, 409);
    assert.match(illegal.body.error.message, /cannot move a job from FAILED to RUN_DONE/);
    assert.equal((await api(web, "PATCH", `/api/jobs/${a!._id}`, { body: {} })).status, 400);

    const many = await api(web, "PATCH", "/api/jobs?workflow=EDIT&name=b", { body: { set: { description: "bee" } } });
    assert.deepEqual(many.body, { modified: 1 });
    assert.equal((await f.balsam.jobs.get(b!._id)).description, "bee");

    const dep = await api(web, "POST", `/api/jobs/${c!._id}/parents`, { body: { parent: b!._id.slice(0, 12) } });
    assert.equal(dep.status, 200, JSON.stringify(dep.body));
    assert.equal(dep.body.child.state, "AWAITING_PARENTS");
    const cycle = await api(web, "POST", `/api/jobs/${b!._id}/parents`, { body: { parent: c!._id } });
    assert.equal(cycle.status, 409);
    assert.deepEqual((await api(web, "GET", `/api/jobs/${b!._id}/children`)).body.jobs.map((j: Job) => j._id), [c!._id]);
    const noOut = await api(web, "GET", `/api/jobs/${b!._id}/output`);
    assert.equal(noOut.status, 404);

    const kill = await api(web, "POST", `/api/jobs/${b!._id}/kill`, { headers: { "content-type": "application/json" } });
    assert.deepEqual(new Set(kill.body.killed), new Set([b!._id, c!._id]));
    assert.equal((await f.balsam.jobs.get(c!._id)).state, "USER_KILLED");
    assert.equal((await api(web, "POST", `/api/jobs/${b!._id}/kill`, { body: {} })).status, 409);

    const fresh = await f.balsam.jobs.add({ name: "fresh", workflow: "EDIT2", application: "echo" });
    const notFinal = await api(web, "POST", `/api/jobs/${fresh._id}/rerun`);
    assert.equal(notFinal.status, 409);
    assert.match(notFinal.body.error.message, /only FAILED, USER_KILLED or JOB_FINISHED jobs can be rerun/);
    const rerun = await api(web, "POST", `/api/jobs/${b!._id}/rerun`);
    assert.equal(rerun.status, 200, JSON.stringify(rerun.body));
    assert.deepEqual(rerun.body.rerun, [b!._id]);
    assert.equal((await f.balsam.jobs.get(b!._id)).state, "READY");
    assert.equal((await api(web, "POST", `/api/jobs/${b!._id}/rerun`, { body: { again: true } })).status, 400);

    const del = await api(web, "DELETE", "/api/jobs?workflow=EDIT&name=c&state=USER_KILLED,AWAITING_PARENTS,FAILED");
    assert.deepEqual(del.body, { deleted: 1 });
    assert.equal(await count("EDIT"), 2);
  });

  test("a launcher runs jobs: output tail; results stream each one as the launcher records it, not at the next recheck", async () => {
    await f.balsam.apps.add({ name: "nap", executable: script("nap.sh", 'sleep "$1"; echo "DH-OUTPUT: $2"') });
    const early = await f.balsam.jobs.add({ name: "early", workflow: "SSE", application: "echo", args: "7" });
    await f.balsam.jobs.setState(early._id, "USER_KILLED");
    const jobs = await f.balsam.jobs.addMany(Array.from({ length: 6 }, (_, i) => ({ name: `nap${i}`, workflow: "SSE", application: "nap", args: `${0.3 + 0.15 * i} ${i}` })));
    const ids = [early._id, ...jobs.map((j) => j._id)];
    const res = await fetch(`${web.url}/api/results`, { method: "POST", headers: { authorization: `Bearer ${web.token}`, "content-type": "application/json" }, body: JSON.stringify({ ids, timeoutMs: 60_000 }) });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
    // The launcher announces each job right after its record is written: hearing that here is "recorded".
    const announced = new Map<string, number>();
    const unsubscribe = await f.balsam.queues.subscribe(FINISHED_CHANNEL, (msg) => {
      // One message may announce several jobs (those of one launcher write).
      for (const { id } of parseFinished(msg)) if (!announced.has(id)) announced.set(id, Date.now());
    });
    const events: SseEvent[] = [];
    const reading = readSse(res, (e) => {
      events.push(e);
    });
    const l = startLauncher(["--wf-filter", "SSE", "--job-mode", "serial"], { ...f.db.env, BALSAM_NODELIST: "node1" });
    // The launcher lives at least as long as its longest job (1.05 s): long enough to be seen.
    let shown: Record<string, unknown> | undefined;
    await waitFor(async () => {
      shown = (await api(web, "GET", "/api/launchers")).body.launchers.find((x: { pid: number }) => x.pid === l.child.pid);
      return shown !== undefined;
    }, 10_000, "the running launcher to be listed");
    assert.deepEqual([shown!.mode, shown!.nodes, shown!.workflows, shown!.alive], ["serial", ["node1"], ["SSE"], true]);
    assert.ok(Date.now() - new Date(shown!.lastHeartbeat as string).getTime() < 10_000);
    await reading;
    assert.equal(await l.exited, 0, l.output());
    const after = (await api(web, "GET", "/api/launchers")).body.launchers as Array<{ pid: number }>;
    assert.ok(!after.some((x) => x.pid === l.child.pid), "an exited launcher is not listed");
    const results = events.filter((e) => e.event === "result");
    assert.equal(results[0]!.data.id, early._id, "jobs already final come first");
    assert.equal(results.length, 7);
    assert.deepEqual(new Set(results.map((e) => e.data.id)), new Set(ids));
    assert.deepEqual(events.at(-1)!.event, "end");
    assert.deepEqual(events.at(-1)!.data, { delivered: 7, timedOut: false });
    await unsubscribe();
    for (const e of results.slice(1)) {
      assert.equal(e.data.state, "JOB_FINISHED");
      assert.equal(e.data.result, Number(e.data.job.args.split(" ")[1]));
      const recorded = announced.get(e.data.id);
      assert.ok(recorded !== undefined, `${e.data.name} was announced`);
      const lag = e.wall - recorded;
      const sinceDecided = e.wall - new Date(e.data.job.stateHistory.at(-1).at).getTime();
      // Pushed on the announcement: a result found only by the stream's recheck of the store comes up to 5 s late. The
      // bound is far under that and far over a busy machine's scheduling delay (a CI run once took 172 ms).
      assert.ok(lag < 1000, `${e.data.name}: delivered ${lag} ms after the launcher recorded it (${sinceDecided} ms after it decided the state)`);
    }
    const out = await api(web, "GET", `/api/jobs/${jobs[0]!._id}/output?lines=1`);
    assert.equal(out.status, 200, JSON.stringify(out.body));
    assert.equal(out.body.text, "DH-OUTPUT: 0");
    assert.match(out.body.path, /nap0\.out$/);

    // GET form, everything final already, and a timeout with an id that never finishes.
    const pending = await f.balsam.jobs.add({ name: "never", workflow: "SSE-IDLE", application: "echo" });
    const got: SseEvent[] = [];
    const r2 = await fetch(`${web.url}/api/results?ids=${jobs[0]!._id},${pending._id}&timeoutMs=300&token=${web.token}`);
    await readSse(r2, (e) => {
      got.push(e);
    });
    assert.deepEqual(got.map((e) => e.event), ["result", "end"]);
    assert.deepEqual(got[1]!.data, { delivered: 1, timedOut: true });
    // No time to wait at all: what is final already still comes, only waiting for the rest is cut.
    const now: SseEvent[] = [];
    const r3 = await fetch(`${web.url}/api/results?ids=${jobs[0]!._id},${jobs[1]!._id},${pending._id}&timeoutMs=0&token=${web.token}`);
    await readSse(r3, (e) => {
      now.push(e);
    });
    assert.deepEqual(now.map((e) => e.event), ["result", "result", "end"]);
    assert.deepEqual(new Set(now.slice(0, 2).map((e) => e.data.id)), new Set([jobs[0]!._id, jobs[1]!._id]));
    assert.deepEqual(now[2]!.data, { delivered: 2, timedOut: true });
    const badIds = await api(web, "POST", "/api/results", { body: { ids: [] } });
    assert.equal(badIds.status, 400);
  });

  test("launchers, launches, throughput", async () => {
    const ls = (await api(web, "GET", "/api/launchers")).body.launchers;
    assert.ok(Array.isArray(ls));
    const launches = (await api(web, "GET", "/api/launches")).body;
    assert.deepEqual(launches.launches, []);
    const tpBody = (await api(web, "GET", "/api/throughput?minutes=5")).body;
    assert.equal(tpBody.complete, true);
    const tp = tpBody.perMinute as Array<{ t: string; finished: number }>;
    assert.equal(tp.length, 5);
    // The launcher of the test before finished 6 jobs within the last minutes.
    assert.equal(tp.reduce((a, b) => a + b.finished, 0), 6);
    assert.equal((await api(web, "GET", "/api/throughput?minutes=0")).status, 400);
  });
});
