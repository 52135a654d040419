import { performance } from "node:perf_hooks";
import { makeCliDb } from "../test/support/cli.js";
import { api, startWeb, type WebProc } from "../test/support/web.js";
import { connect, type Balsam } from "../libs/client/index.js";
import { buildJob, dropDatabase, dropJobs, insertJobs } from "../libs/store/index.js";
import { num, pct, removeAtEnd } from "./measure.js";

const f1 = (x: number) => x.toFixed(1);

/**
 * `balsam web` on a big database, timed as the dashboard and an HTTP client
 * see it (a real `balsam web` subprocess, fetch over loopback):
 * - the job table's page (50 rows) at BENCH_WEB_JOBS (default 100,000) jobs
 *   in 10 workflows: the first page, one workflow's, a name search, page 100
 *   (target < 300 ms), beside `/api/health` (the HTTP round trip alone);
 * - bulk add through `POST /api/jobs/bulk` (10,000 a request) vs the client
 *   API's `jobs.addMany` with the same chunks, BENCH_WEB_BULK_JOBS (default
 *   50,000) each.
 */
async function benchTable(web: WebProc, b: Balsam, n: number): Promise<void> {
  const t0 = performance.now();
  for (let i = 0; i < n; i += 10_000) {
    const docs = Array.from({ length: Math.min(10_000, n - i) }, (_, k) => buildJob({ name: `task${i + k}`, workflow: `WF${(i + k) % 10}`, application: "noop" }));
    await insertJobs(b.store, docs);
  }
  console.log(`(filled in ${f1((performance.now() - t0) / 1000)} s)`);

  const timeGet = async (label: string, path: string, reps = 7) => {
    const ms: number[] = [];
    let rows = 0;
    for (let i = 0; i < reps; i++) {
      const t = performance.now();
      const r = await api(web, "GET", path);
      ms.push(performance.now() - t);
      if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${JSON.stringify(r.body)}`);
      rows = Array.isArray(r.body.jobs) ? r.body.jobs.length : rows;
    }
    console.log(`${label}: median ${f1(pct(ms, 50))} ms, max ${f1(Math.max(...ms))} ms${rows ? ` (${rows} rows)` : ""}`);
    return pct(ms, 50);
  };
  await timeGet("GET /api/health (HTTP round trip, no query)", "/api/health");
  await timeGet("job table, first page (all workflows)", "/api/jobs?limit=50");
  await timeGet("job table, first page of WF3", "/api/jobs?workflow=WF3&limit=50");
  await timeGet("job table, name contains 'task9999'", "/api/jobs?name=task9999&limit=50", 1);
  let after: string | null = null;
  for (let p = 0; p < 99; p++) {
    const r = await api(web, "GET", `/api/jobs?workflow=WF3&limit=50${after ? `&after=${after}` : ""}`);
    after = r.body.next as string | null;
  }
  if (after) await timeGet("job table, page 100 of WF3", `/api/jobs?workflow=WF3&limit=50&after=${after}`, 3);
  await timeGet(`state counts (/api/jobs/states, all ${n})`, "/api/jobs/states", 1);
  // deleteMany({}) of 100k jobs fails on FerretDB 1.24 ("too many SQL variables"); dropping the collection does not.
  await dropJobs(b.store);
  await b.store.ensureIndexes();
}

export async function benchWeb(mongoUrl: string, redisUrl: string): Promise<void> {
  const n = num("BENCH_WEB_JOBS", 100_000);
  const bulkN = num("BENCH_WEB_BULK_JOBS", 50_000);
  console.log(`\n## balsam web: the job table on ${n} jobs (10 workflows), bulk add of ${bulkN} jobs`);
  const db = await makeCliDb(mongoUrl, redisUrl, "bench_web", "bench_web");
  const b = await connect({ dbPath: db.dir });
  const web = await startWeb(db.env);
  try {
    await b.apps.add({ name: "noop", executable: "/bin/true" });
    if (n > 0) await benchTable(web, b, n);
    const specs = (wf: string, from: number, k: number) => Array.from({ length: k }, (_, i) => ({ name: `b${from + i}`, workflow: wf, application: "noop" }));
    // Interleaved chunk by chunk, so both see the same collection size (inserts slow down as it grows).
    let webS = 0;
    let clientS = 0;
    for (let i = 0; i < bulkN; i += 10_000) {
      const k = Math.min(10_000, bulkN - i);
      let t = performance.now();
      const r = await api(web, "POST", "/api/jobs/bulk", { body: { jobs: specs("WEB", i, k) } });
      if (r.status !== 201) throw new Error(`bulk add: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      webS += (performance.now() - t) / 1000;
      t = performance.now();
      await b.jobs.addMany(specs("CLIENT", i, k));
      clientS += (performance.now() - t) / 1000;
    }
    console.log(`client jobs.addMany:       ${f1(bulkN / clientS)} jobs/s (${f1(clientS)} s)`);
    console.log(`POST /api/jobs/bulk:       ${f1(bulkN / webS)} jobs/s (${f1(webS)} s)  ratio ${(clientS / webS).toFixed(2)} of the client API`);
  } finally {
    await web.stop();
    await dropDatabase(b.store).catch(() => undefined);
    for (const wf of ["WEB", "CLIENT"]) await b.queues.obliterate(wf).catch(() => undefined);
    await b.close();
    removeAtEnd(() => db.cleanup());
  }
}
