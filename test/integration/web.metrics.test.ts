import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { useCliFixture } from "../support/fixture.js";
import { type LauncherProc } from "../support/launcher.js";
import { api, readSse, startWeb, type SseEvent, type WebProc } from "../support/web.js";

const f = useCliFixture("webmetrics");
const { ctx, script } = f;
let web: WebProc;

async function scrape(): Promise<ReturnType<typeof parsePrometheusTextFormat>> {
  const r = await api(web, "GET", "/metrics");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /text\/plain/);
  return parsePrometheusTextFormat(r.body as string);
}

describe("balsam web: /metrics and the live counts", () => {
  before(async () => {
    await f.balsam.apps.add({ name: "ok", executable: script("ok.sh", 'echo "DH-OUTPUT: 1"') });
    await f.balsam.apps.add({ name: "bad", executable: script("bad.sh", "exit 3") });
    web = await startWeb(f.db.env);
  });
  after(async () => {
    assert.equal(await web.stop(), 0, web.output());
    assert.ok(!existsSync(join(f.db.dir, "web.json")), "a stopped server removes web.json");
  });

  test("the states stream sends the counts, then new counts as a launcher changes them", async () => {
    await f.balsam.jobs.addMany([
      ...Array.from({ length: 8 }, (_, i) => ({ name: `ok${i}`, workflow: "MA", application: "ok" })),
      ...Array.from({ length: 3 }, (_, i) => ({ name: `bad${i}`, workflow: "MA", application: "bad" })),
      ...Array.from({ length: 4 }, (_, i) => ({ name: `wait${i}`, workflow: "MB", application: "ok" })),
    ]);
    const res = await fetch(`${web.url}/api/events?token=${web.token}`);
    assert.equal(res.status, 200);
    const seen: SseEvent[] = [];
    let launched = false;
    let launcher: LauncherProc | undefined;
    await readSse(res, (e) => {
      seen.push(e);
      if (!launched) {
        assert.deepEqual(e.data.byWorkflow.MA, { READY: 11 });
        launched = true;
        launcher = f.start("MA");
      }
      // Done once MA holds only final states.
      return !(e.data.byWorkflow.MA?.JOB_FINISHED === 8 && e.data.byWorkflow.MA?.FAILED === 3);
    });
    assert.equal(await launcher!.exited, 0, launcher!.output());
    assert.ok(seen.length >= 2, "at least the first counts and the final ones");
    assert.ok(seen.every((e) => e.event === "states"));
    for (let i = 1; i < seen.length; i++) assert.notDeepEqual(seen[i]!.data, seen[i - 1]!.data, "sent only when the counts change");
    assert.deepEqual(seen.at(-1)!.data.byWorkflow.MB, { READY: 4 });
  });

  test("/metrics parses as Prometheus text; job counts equal `balsam ls --by-states`", async () => {
    const fams = await scrape();
    const byName = new Map(fams.map((f) => [f.name, f]));
    for (const n of ["balsam_jobs", "balsam_queue_entries", "balsam_launchers_alive", "balsam_transitions_total", "balsam_job_runtime_seconds", "balsam_result_latency_seconds"]) {
      assert.ok(byName.has(n), `metrics lack ${n}`);
    }
    for (const wf of ["MA", "MB"]) {
      const ls = await f.db.run(["ls", "--wf", wf, "--by-states", "--json"]);
      assert.equal(ls.code, 0, ls.stderr);
      const want = JSON.parse(ls.stdout) as { total: number; states: Record<string, number> };
      const got: Record<string, number> = {};
      for (const m of byName.get("balsam_jobs")!.metrics) if (m.labels!.workflow === wf) got[m.labels!.state!] = Number(m.value);
      assert.deepEqual(got, want.states, wf);
    }
    const queue = byName.get("balsam_queue_entries")!.metrics.filter((m) => m.labels!.workflow === "MB" && m.labels!.status === "waiting");
    // MB's 4 jobs were added together: one chunk, one entry (libs/client/add.ts).
    assert.deepEqual(queue.map((m) => Number(m.value)), [1]);
    const transitions = Object.fromEntries(byName.get("balsam_transitions_total")!.metrics.map((m) => [m.labels!.state, Number(m.value)]));
    assert.deepEqual(transitions, { JOB_FINISHED: 8, FAILED: 3 });
    const runtime = byName.get("balsam_job_runtime_seconds")!.metrics[0]!;
    assert.equal(Number(runtime.count), 11);
    const latency = byName.get("balsam_result_latency_seconds")!.metrics[0]!;
    assert.equal(Number(latency.count), 11);
    assert.equal(Number(latency.buckets!["1"]), 11, "every announcement heard within a second of its write");
    assert.deepEqual(byName.get("balsam_launchers_alive")!.metrics.map((m) => Number(m.value)), [0]);
  });

  test("a restarted server keeps its token; the port in use is one clear line", async () => {
    const again = await startWeb(f.db.env);
    try {
      assert.equal(again.token, web.token);
      const port = new URL(again.url).port;
      const r = await f.db.run(["web", "--port", port], { timeoutMs: 20_000 });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`port ${port} is in use`));
    } finally {
      assert.equal(await again.stop(), 0);
    }
  });
});

describe("balsam web: starting it", () => {
  test("--listen-all refuses a token file others can read; a malformed one is refused; nothing is served", async () => {
    const db2 = await f.anotherDb({ dbName: ctx.dbName + "_2", prefix: ctx.prefix + "_2" });
    const tokenFile = join(db2.dir, "web-token");
    writeFileSync(tokenFile, "ab".repeat(24) + "\n", { mode: 0o644 });
    chmodSync(tokenFile, 0o644);
    const r = await db2.run(["web", "--port", "0", "--listen-all"], { timeoutMs: 20_000 });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /readable by other users.*refusing to listen on all interfaces/);
    assert.equal(r.stderr.trim().split("\n").length, 1);
    assert.equal(r.stdout, "");
    assert.ok(!existsSync(join(db2.dir, "web.json")));
    writeFileSync(tokenFile, "not a token\n", { mode: 0o600 });
    const m = await db2.run(["web", "--port", "0"], { timeoutMs: 20_000 });
    assert.equal(m.code, 1);
    assert.match(m.stderr, /does not hold a web token/);
    const p = await db2.run(["web", "--port", "70000"], { timeoutMs: 20_000 });
    assert.equal(p.code, 2);
    assert.match(p.stderr, /--port must be ≤ 65535/);

    // With a token only its owner can read, --listen-all serves, and the token still guards it.
    writeFileSync(tokenFile, "cd".repeat(24) + "\n");
    chmodSync(tokenFile, 0o600);
    const all = await startWeb(db2.env, ["--listen-all"]);
    try {
      assert.equal(all.token, "cd".repeat(24));
      assert.equal(new URL(all.url).hostname, hostname().toLowerCase());
      const local = { url: `http://127.0.0.1:${new URL(all.url).port}`, token: all.token };
      assert.equal((await api(local, "GET", "/api/health")).status, 200);
      assert.equal((await api(local, "GET", "/api/health", { token: null })).status, 401);
    } finally {
      assert.equal(await all.stop(), 0);
    }
  });

});
