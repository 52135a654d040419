/**
 * `npm run bench`: prints figures, asserts nothing. Each figure stands beside
 * the raw limit measured in the same run on the same servers, because these
 * machines are noisy. Sizes: BENCH_ENQUEUE_JOBS (default 100000),
 * BENCH_LAUNCHER_JOBS (default 20000), BENCH_LATENCY_JOBS (default 100),
 * BENCH_MANY_JOBS (default 20000, several launchers),
 * BENCH_LS_JOBS (default 1000000), BENCH_IN_SIZES (default 20000,200000).
 * BENCH_CLUSTER_JOBS (default 8000; a Redis Cluster started here beside the one Redis),
 * BENCH_PEERS_JOBS (default 5000; Dask distributed and Celery on the same no-op jobs),
 * BENCH_PEERS_ROUNDS (default 1; Dask, Celery and ours in turn that many times, ratios taken within each round),
 * BENCH_PEERS_BEFORE (another build's bin/balsam.js: its launcher beside ours in each round, before and after in one run),
 * BENCH_ONLY=server|enqueue|launcher|peers|cluster|cli|startup|search|web|chaos|ferretdb runs one part, or several
 * named with commas (`launcher,peers`: the issue-24 figures, 100,000 jobs and the peers, in one run) (cli includes startup;
 * web: BENCH_WEB_JOBS, default 100000; BENCH_WEB_BULK_JOBS, default 50000;
 * chaos, the cluster in a box: BENCH_CHAOS_JOBS, default 5000; BENCH_CHAOS_SECONDS, default 180;
 * ferretdb, each speed-only patch of our FerretDB series with and without it, and 0010's counts:
 * BENCH_FERRETDB_JOBS, default 1000; BENCH_FERRETDB_COUNT_JOBS, default 20000; see bench/ferretdb.ts).
 * BENCH_FERRETDB_BEFORE=/path/to/ferretdb runs the write costs and the launcher part a second
 * time on servers started from that binary (e.g. a build without our patch
 * series), so before and after are measured in one run.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir, cpus, totalmem } from "node:os";
import { join } from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { startTestServers } from "../test/support/servers.js";
import { connect } from "../libs/client/index.js";
import { buildJob, dropDatabase, insertJobs, Store } from "../libs/store/index.js";
import { num, removeNow } from "./measure.js";
import { benchCli, benchStartup } from "./cli.js";
import { benchLauncher } from "./launcher.js";
import { benchCluster } from "./cluster.js";
import { benchSearch } from "./search.js";
import { benchServer, benchWrites } from "./server.js";
import { benchWeb } from "./web.js";
import { benchChaos } from "./chaos.js";
import { benchPeers } from "./peers.js";
import { benchFerretdb } from "./ferretdb.js";

const PARTS = ["server", "enqueue", "launcher", "peers", "cluster", "cli", "startup", "search", "web", "chaos", "ferretdb"] as const;
type Part = (typeof PARTS)[number];

/** The parts BENCH_ONLY names; undefined when it names none (every part runs). A name not a part: one line, exit 2. */
function onlyParts(v: string | undefined): Set<Part> | undefined {
  const names = (v ?? "").split(",").map((x) => x.trim()).filter(Boolean);
  if (!names.length) return undefined;
  const unknown = names.filter((x) => !(PARTS as readonly string[]).includes(x));
  if (unknown.length) {
    console.error(`bench: BENCH_ONLY names no part ${unknown.join(", ")} (the parts: ${PARTS.join(", ")})`);
    process.exit(2);
  }
  return new Set(names as Part[]);
}

const only = onlyParts(process.env.BENCH_ONLY);
/** Whether this run includes `part`. */
const runs = (...part: Part[]) => !only || part.some((p) => only.has(p));

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
    await insertJobs(store, docs);
    for (let j = 0; j < docs.length; j += 2000) {
      await q.addBulk(docs.slice(j, j + 2000).map((d) => ({ name: "run", data: { id: d._id }, opts: { jobId: `${d._id}_0`, removeOnComplete: true } })));
    }
  }
  const rawS = (performance.now() - t) / 1000;
  await q.close();
  conn.disconnect();
  await dropDatabase(store);
  await store.close();

  const b = await connect({ mongoUrl, redisUrl, dbName: "bench_api", queuePrefix: "bench_api" });
  await b.apps.add({ name: "noop", executable: "/bin/true" });
  t = performance.now();
  for (let i = 0; i < n; i += chunk) {
    await b.jobs.addMany(Array.from({ length: Math.min(chunk, n - i) }, (_, k) => ({ name: `task${i + k}`, workflow: "API", application: "noop" })));
  }
  const apiS = (performance.now() - t) / 1000;
  await dropDatabase(b.store);
  await b.queues.obliterate("API");
  await b.close();
  console.log(`raw insertMany+addBulk: ${f1(n / rawS)} jobs/s (${f1(rawS)} s)`);
  console.log(`balsam jobs.addMany:    ${f1(n / apiS)} jobs/s (${f1(apiS)} s)  ratio ${(rawS / apiS).toFixed(2)} of raw`);
}


async function main(): Promise<void> {
  console.log(`# balsam-mq benchmark — ${cpus().length} cores, ${f1(totalmem() / 2 ** 30)} GiB, node ${process.version}`);
  const dir = mkdtempSync(join(tmpdir(), "balsam-bench-"));
  const servers = await startTestServers();
  console.log(`servers: ${servers.mongoUrl} ${process.env.MONGODB_URL ? "(given)" : "(started here; FerretDB/mongod as found)"}`);
  try {
    if (runs("server")) {
      await benchServer(servers.mongoUrl);
      await benchWrites(servers.mongoUrl, servers.mongoPid);
    }
    if (runs("enqueue")) await benchEnqueue(servers.mongoUrl, servers.redisUrl);
    if (runs("launcher")) {
      const before = process.env.BENCH_FERRETDB_BEFORE;
      // Beside the same figures on the other server below.
      if (before && !runs("server")) await benchWrites(servers.mongoUrl, servers.mongoPid);
      await benchLauncher(servers.mongoUrl, servers.redisUrl, servers.mongoPid);
      if (before && !process.env.MONGODB_URL) {
        console.log(`\n(the same, on FerretDB from ${before})`);
        const saved = process.env.BALSAM_FERRETDB;
        process.env.BALSAM_FERRETDB = before;
        const old = await startTestServers();
        if (saved === undefined) delete process.env.BALSAM_FERRETDB;
        else process.env.BALSAM_FERRETDB = saved;
        try {
          await benchWrites(old.mongoUrl, old.mongoPid);
          await benchLauncher(old.mongoUrl, old.redisUrl, old.mongoPid);
        } finally {
          await old.stop();
        }
      }
    }
    if (runs("peers")) await benchPeers(servers.mongoUrl, servers.redisUrl, servers.mongoPid);
    if (runs("cluster")) await benchCluster(servers.mongoUrl, servers.redisUrl);
    if (runs("search")) await benchSearch(servers.mongoUrl, servers.redisUrl);
    if (runs("web")) await benchWeb(servers.mongoUrl, servers.redisUrl);
    // Last: filling a million jobs into FerretDB takes minutes.
    if (runs("cli", "startup")) await benchStartup(servers.mongoUrl, servers.redisUrl);
    if (runs("cli")) await benchCli(servers.mongoUrl, servers.redisUrl);
    // Servers of its own: FerretDB builds of the patch series' prefixes, two at a time.
    if (runs("ferretdb")) await benchFerretdb();
    // Servers of its own (on every address: the namespaces reach them through their links).
    if (runs("chaos")) await benchChaos();
  } finally {
    await servers.stop();
    removeNow();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
