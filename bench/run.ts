/**
 * `npm run bench`: prints figures, asserts nothing. Each figure stands beside
 * the raw limit measured in the same run on the same servers, because these
 * machines are noisy. Sizes: BENCH_ENQUEUE_JOBS (default 100000),
 * BENCH_LAUNCHER_JOBS (default 2000), BENCH_LATENCY_JOBS (default 100),
 * BENCH_LS_JOBS (default 1000000), BENCH_IN_SIZES (default 20000,200000).
 * BENCH_ONLY=server|enqueue|launcher|cli|search|web runs one part
 * (web: BENCH_WEB_JOBS, default 100000; BENCH_WEB_BULK_JOBS, default 50000).
 * BENCH_FERRETDB_BEFORE=/path/to/ferretdb runs the launcher part a second
 * time on servers started from that binary (e.g. a build without our patch
 * series), so before and after are measured in one run.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir, cpus, totalmem } from "node:os";
import { join } from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { startTestServers } from "../test/support/servers.js";
import { makeCliDb } from "../test/support/cli.js";
import { startLauncher } from "../test/support/launcher.js";
import { connect, type Balsam } from "../libs/client/index.js";
import { buildJob, Store } from "../libs/store/index.js";
import { waitFor } from "../services/dbserver/servers.js";
import { num, pct, rawSpawnRate } from "./measure.js";
import { benchCli } from "./cli.js";
import { benchSearch } from "./search.js";
import { benchServer } from "./server.js";
import { benchWeb } from "./web.js";

const only = process.env.BENCH_ONLY;

const f1 = (x: number) => x.toFixed(1);

async function benchEnqueue(mongoUrl: string, redisUrl: string): Promise<void> {
  const n = num("BENCH_ENQUEUE_JOBS", 100_000);
  console.log(`\n## create + enqueue ${n} jobs (libs/client jobs.addMany) vs raw insertMany + addBulk`);
  // Raw: the same documents straight through the drivers, same chunking.
  const store = await Store.connect({ url: mongoUrl, dbName: "bench_raw" });
  const conn = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const q = new Queue("RAW", { connection: conn, prefix: "bench_raw" });
  const chunk = 10_000;
  let t = performance.now();
  for (let i = 0; i < n; i += chunk) {
    const docs = Array.from({ length: Math.min(chunk, n - i) }, (_, k) => buildJob({ name: `task${i + k}`, workflow: "RAW", application: "noop" }));
    await store.jobs.insertMany(docs, { ordered: false });
    for (let j = 0; j < docs.length; j += 2000) {
      await q.addBulk(docs.slice(j, j + 2000).map((d) => ({ name: "run", data: { id: d._id }, opts: { jobId: `${d._id}_0`, removeOnComplete: true } })));
    }
  }
  const rawS = (performance.now() - t) / 1000;
  await q.close();
  conn.disconnect();
  await store.db.dropDatabase();
  await store.close();

  const b = await connect({ mongoUrl, redisUrl, dbName: "bench_api", queuePrefix: "bench_api" });
  await b.apps.add({ name: "noop", executable: "/bin/true" });
  t = performance.now();
  for (let i = 0; i < n; i += chunk) {
    await b.jobs.addMany(Array.from({ length: Math.min(chunk, n - i) }, (_, k) => ({ name: `task${i + k}`, workflow: "API", application: "noop" })));
  }
  const apiS = (performance.now() - t) / 1000;
  await b.store.db.dropDatabase();
  await b.queues.obliterate("API");
  await b.close();
  console.log(`raw insertMany+addBulk: ${f1(n / rawS)} jobs/s (${f1(rawS)} s)`);
  console.log(`balsam jobs.addMany:    ${f1(n / apiS)} jobs/s (${f1(apiS)} s)  ratio ${(rawS / apiS).toFixed(2)} of raw`);
}


function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

async function benchLauncher(mongoUrl: string, redisUrl: string): Promise<void> {
  const n = num("BENCH_LAUNCHER_JOBS", 2000);
  const packing = 4;
  console.log(`\n## ${n} no-op jobs (/bin/true), one serial launcher, node_packing_count ${packing}`);
  const db = await makeCliDb(mongoUrl, redisUrl, "bench_launch", "bench_launch");
  const b: Balsam = await connect({ dbPath: db.dir });
  try {
    await b.apps.add({ name: "true", executable: "/bin/true" });
    for (let i = 0; i < n; i += 10_000) {
      await b.jobs.addMany(Array.from({ length: Math.min(10_000, n - i) }, (_, k) => ({ name: `t${i + k}`, workflow: "BENCH", application: "true", nodePackingCount: packing })));
    }
    const t = performance.now();
    const l = startLauncher(["--wf-filter", "BENCH", "--job-mode", "serial"], { ...db.env, BALSAM_NODELIST: "node1" });
    let peak = 0;
    const samples: number[] = [];
    const sampler = setInterval(() => {
      const r = rssOf(l.child.pid ?? 0);
      if (r > 0) samples.push(r);
      peak = Math.max(peak, r);
    }, 200);
    const code = await l.exited;
    clearInterval(sampler);
    const s = (performance.now() - t) / 1000;
    const counts = await b.jobs.filter({ workflow: "BENCH" }).byState();
    const raw = await rawSpawnRate("/bin/true", Math.min(n, 3000), packing);
    console.log(`launcher exit ${code}, states ${JSON.stringify(counts)}`);
    console.log(`end to end: ${f1(n / s)} jobs/s (${f1(s)} s incl. start-up); raw /bin/true spawn from Node at ${packing} in flight: ${f1(raw)}/s; ratio ${(n / s / raw).toFixed(3)}`);
    const third = Math.max(1, Math.floor(samples.length / 3));
    console.log(`launcher RSS: peak ${f1(peak)} MiB; mean first third ${f1(samples.slice(0, third).reduce((a, x) => a + x, 0) / third)} MiB, last third ${f1(samples.slice(-third).reduce((a, x) => a + x, 0) / third)} MiB`);

    // Dispatch latency: jobs added one at a time to an idle persistent launcher; READY → RUNNING as recorded.
    const m = num("BENCH_LATENCY_JOBS", 100);
    const lp = startLauncher(["--wf-filter", "LAT", "--job-mode", "serial", "--persistent"], { ...db.env, BALSAM_NODELIST: "node1" });
    await waitFor(() => lp.output().includes("started:"), 30_000, "the launcher to start");
    const lats: number[] = [];
    for (let i = 0; i < m; i++) {
      const j = await b.jobs.add({ name: `lat${i}`, workflow: "LAT", application: "true" });
      await waitFor(async () => (await b.jobs.get(j._id)).state === "JOB_FINISHED", 30_000, "a latency job", 2);
      const h = (await b.jobs.get(j._id)).stateHistory;
      const ready = h.find((x) => x.state === "READY")!.at.getTime();
      const running = h.find((x) => x.state === "RUNNING")!.at.getTime();
      lats.push(running - ready);
    }
    lp.child.kill("SIGTERM");
    await lp.exited;
    console.log(`dispatch latency READY → RUNNING over ${m} jobs added one at a time: p50 ${pct(lats, 50)} ms, p99 ${pct(lats, 99)} ms`);
    await b.store.db.dropDatabase();
  } finally {
    await b.close();
    db.cleanup();
  }
}

async function main(): Promise<void> {
  console.log(`# balsam-mq benchmark — ${cpus().length} cores, ${f1(totalmem() / 2 ** 30)} GiB, node ${process.version}`);
  const dir = mkdtempSync(join(tmpdir(), "balsam-bench-"));
  const servers = await startTestServers();
  console.log(`servers: ${servers.mongoUrl} ${process.env.MONGODB_URL ? "(given)" : "(started here; FerretDB/mongod as found)"}`);
  try {
    if (!only || only === "server") await benchServer(servers.mongoUrl);
    if (!only || only === "enqueue") await benchEnqueue(servers.mongoUrl, servers.redisUrl);
    if (!only || only === "launcher") {
      await benchLauncher(servers.mongoUrl, servers.redisUrl);
      const before = process.env.BENCH_FERRETDB_BEFORE;
      if (before && !process.env.MONGODB_URL) {
        console.log(`\n(the same, on FerretDB from ${before})`);
        const saved = process.env.BALSAM_FERRETDB;
        process.env.BALSAM_FERRETDB = before;
        const old = await startTestServers();
        if (saved === undefined) delete process.env.BALSAM_FERRETDB;
        else process.env.BALSAM_FERRETDB = saved;
        try {
          await benchLauncher(old.mongoUrl, old.redisUrl);
        } finally {
          await old.stop();
        }
      }
    }
    if (!only || only === "search") await benchSearch(servers.mongoUrl, servers.redisUrl);
    if (!only || only === "web") await benchWeb(servers.mongoUrl, servers.redisUrl);
    // Last: filling a million jobs into FerretDB takes minutes.
    if (!only || only === "cli") await benchCli(servers.mongoUrl, servers.redisUrl);
  } finally {
    await servers.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
