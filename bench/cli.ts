import { spawnSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { BALSAM_BIN, makeCliDb, type CliDb } from "../test/support/cli.js";
import { connect } from "../libs/client/index.js";
import { buildJob, dropDatabase, dropJobs, findJobs, insertJobs } from "../libs/store/index.js";
import { num, pct } from "./measure.js";
import { DEFAULT_LS_LIMIT } from "../cli/format.js";

const f0 = (x: number) => x.toFixed(0);
const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);

/** Wall time of `node -e 0`: what every `balsam` subprocess pays before doing anything. */
function bareNodeMs(): number {
  const runs = [0, 1, 2].map(() => {
    const t = performance.now();
    spawnSync(process.execPath, ["-e", "0"]);
    return performance.now() - t;
  });
  return pct(runs, 50);
}

async function timed(db: CliDb, args: string[], input?: string, env?: NodeJS.ProcessEnv): Promise<{ ms: number; out: string }> {
  const t = performance.now();
  const r = await db.run(args, { timeoutMs: 3_600_000, ...(input === undefined ? {} : { input }), ...(env ? { env } : {}) });
  const ms = performance.now() - t;
  if (r.code !== 0) throw new Error(`balsam ${args.join(" ")}: ${r.stderr}`);
  return { ms, out: r.stdout };
}

/**
 * The CLI on a big database, each command timed as a user sees it (a
 * subprocess, node start-up included) beside bare `node -e 0` measured in
 * the same run; "net" is the difference. BENCH_LS_JOBS jobs (default
 * 100,000; set 1000000 for the million-job figures) in 10 workflows, so
 * `rm --wf WF5 --all` removes a tenth. BENCH_DUMMIES (default
 * min(100,000, BENCH_LS_JOBS)) sizes `make_dummies`, compared with raw
 * `insertMany` of as many job documents into an empty collection.
 */
export async function benchCli(mongoUrl: string, redisUrl: string): Promise<void> {
  const n = num("BENCH_LS_JOBS", 100_000);
  const dummies = num("BENCH_DUMMIES", Math.min(100_000, n));
  const perWf = Math.floor(n / 10);
  console.log(`\n## the CLI on ${n} jobs (10 workflows of ${perWf})`);
  const db = await makeCliDb(mongoUrl, redisUrl, "bench_cli", "bench_cli");
  const fresh = await makeCliDb(mongoUrl, redisUrl, "bench_cli_dummies", "bench_cli_dummies");
  const b = await connect({ dbPath: db.dir });
  const bd = await connect({ dbPath: fresh.dir });
  try {
    await b.apps.add({ name: "noop", executable: "/bin/true" });
    const node = bareNodeMs();
    console.log(`bare node -e 0: ${f0(node)} ms`);
    // The CLI's own start-up (modules, no server) is measured apart, so each
    // query's cost shows beside the process's wall time.
    const helps: number[] = [];
    for (let i = 0; i < 3; i++) helps.push((await timed(db, ["--help"])).ms);
    const help = pct(helps, 50);
    console.log(`balsam --help (no server): ${f0(help)} ms (net ${f0(help - node)} ms over bare node)`);
    const line = (what: string, ms: number) => console.log(`${what}: ${f0(ms)} ms (net ${f0(ms - node)} ms over bare node, ${f0(ms - help)} ms over --help)`);
    // A read-only command three times: the median, and the first run apart
    // (right after the fill, the server's caches are cold: 0.56 s against 0.40 s
    // for `ls --wf` at 100k in one run here).
    const reads = async (what: string, args: string[], env?: NodeJS.ProcessEnv) => {
      const ms: number[] = [];
      for (let i = 0; i < 3; i++) ms.push((await timed(db, args, undefined, env)).ms);
      console.log(`${what}: ${f0(pct(ms, 50))} ms median of 3 (net ${f0(pct(ms, 50) - node)} ms over bare node, ${f0(pct(ms, 50) - help)} ms over --help; first run ${f0(ms[0] as number)} ms)`);
    };

    // Raw insert rate, measured on an empty collection as make_dummies sees it.
    let t = performance.now();
    for (let i = 0; i < dummies; i += 10_000) {
      const docs = Array.from({ length: Math.min(10_000, dummies - i) }, (_, k) => buildJob({ name: `raw${i + k}`, workflow: "RAW", application: "noop" }));
      await insertJobs(bd.store, docs);
    }
    const rawRate = dummies / ((performance.now() - t) / 1000);
    // Dropped, not deleteMany({}): FerretDB deletes all matched ids in one statement, past SQLite's 32,766 variables.
    await dropJobs(bd.store);
    await bd.store.ensureIndexes();
    const md = await timed(fresh, ["make_dummies", String(dummies)]);
    const mdRate = dummies / (md.ms / 1000);
    console.log(`make_dummies ${dummies}: ${f0(mdRate)} jobs/s (${f0(md.ms)} ms) vs raw insertMany ${f0(rawRate)} jobs/s: ${f2(mdRate / rawRate)} of raw`);

    t = performance.now();
    // Straight inserts: this measures listing, not enqueueing (make_dummies above does that).
    for (let i = 0; i < n; i += 10_000) {
      // Every job tagged as its workflow splits them (grp=G3 ↔ WF3), so `ls --tag` and `ls --wf` select the same tenth.
      const docs = Array.from({ length: Math.min(10_000, n - i) }, (_, k) => buildJob({ name: `task${i + k}`, workflow: `WF${(i + k) % 10}`, application: "noop", tags: { grp: `G${(i + k) % 10}`, run: "bench" } }));
      // The store's insert, which makes the tag keys' indexes as `balsam job` does.
      await insertJobs(b.store, docs);
    }
    console.log(`(filled ${n} in ${f0((performance.now() - t) / 1000)} s)`);
    const some = (await findJobs(b.store, { workflow: "WF7" }, { projection: { _id: 1 }, limit: 1 }))[0]?._id ?? "";

    await reads(`balsam ls --wf WF3 (first page of ${Math.min(DEFAULT_LS_LIMIT, perWf)} of ${perWf})`, ["ls", "--wf", "WF3"]);
    await reads(`BALSAM_LS_LIMIT=5000 balsam ls --wf WF3 (a page of ${Math.min(5000, perWf)}, the default before)`, ["ls", "--wf", "WF3"], { BALSAM_LS_LIMIT: "5000" });
    await reads(`balsam ls --wf-exact WF3`, ["ls", "--wf-exact", "WF3"]);
    await reads(`balsam ls --tag grp=G3 (first page of ${Math.min(DEFAULT_LS_LIMIT, perWf)} of ${perWf}, beside ls --wf WF3)`, ["ls", "--tag", "grp=G3"]);
    await reads(`BALSAM_LS_LIMIT=5000 balsam ls --tag grp=G3 (a page of ${Math.min(5000, perWf)})`, ["ls", "--tag", "grp=G3"], { BALSAM_LS_LIMIT: "5000" });
    await reads(`balsam ls --by-states --tag grp=G3 (${perWf})`, ["ls", "--by-states", "--tag", "grp=G3"]);
    await reads(`balsam ls --state READY (first page of ${n})`, ["ls", "--state", "READY"]);
    // Full scans, seconds each: once.
    line(`balsam ls --name task12345 (substring, all ${n})`, (await timed(db, ["ls", "--name", "task12345"])).ms);
    line(`balsam ls --id ${some.slice(9, 18)} (substring of an id, all ${n})`, (await timed(db, ["ls", "--id", some.slice(9, 18)])).ms);
    await reads(`balsam ls --by-states (all ${n})`, ["ls", "--by-states"]);
    await reads(`balsam ls --by-states --wf WF3 (${perWf})`, ["ls", "--by-states", "--wf", "WF3"]);
    await reads(`balsam ls wf (10 workflows, ${n} jobs)`, ["ls", "wf"]);
    await reads(`balsam ls --tree --wf WF3 (first page of ${perWf})`, ["ls", "--tree", "--wf", "WF3"]);
    line(`balsam modify ${some.slice(0, 8)} description x (id prefix among ${n})`, (await timed(db, ["modify", some.slice(0, 8), "description", "x"])).ms);
    line(`balsam rm jobs --wf WF5 --all --force (${perWf} of ${n})`, (await timed(db, ["rm", "jobs", "--wf", "WF5", "--all", "--force"])).ms);
    await dropDatabase(b.store);
    await dropDatabase(bd.store);
  } finally {
    await b.close();
    await bd.close();
    db.cleanup();
    fresh.cleanup();
  }
}

/** Median wall time of `runs` runs of a command, in ms. */
function medianMs(runs: number, cmd: string, args: string[], env: NodeJS.ProcessEnv): number {
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    ts.push(performance.now() - t);
    if (r.status !== 0 && !args.includes("--bogus")) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr.toString()}`);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)] as number;
}

/**
 * How long `balsam` takes to start, as a user waits for it, beside a bare
 * `node -e 0` measured in the same run (issue 12: `--help` ≤ 2×, `ls` on a
 * 1k-job database ≤ 3×). BENCH_STARTUP_JOBS (default 1000) jobs.
 */
export async function benchStartup(mongoUrl: string, redisUrl: string): Promise<void> {
  const n = process.env.BENCH_STARTUP_JOBS ? Number(process.env.BENCH_STARTUP_JOBS) : 1000;
  const runs = 9;
  console.log(`\n## balsam start-up (median of ${runs} runs; database of ${n} jobs)`);
  const db = await makeCliDb(mongoUrl, redisUrl, "bench_startup", "bench_startup");
  const b = await connect({ dbPath: db.dir });
  try {
    await b.apps.add({ name: "noop", executable: "/bin/true" });
    await b.jobs.addMany(Array.from({ length: n }, (_, i) => ({ name: `task${i}`, workflow: "START", application: "noop" })));
    const node = medianMs(runs, process.execPath, ["-e", "0"], {});
    const row = (what: string, args: string[]) => {
      const ms = medianMs(runs, process.execPath, [BALSAM_BIN, ...args], db.env);
      console.log(`${what.padEnd(34)} ${f1(ms).padStart(7)} ms  ${(ms / node).toFixed(2)}× bare node`);
    };
    console.log(`${"node -e 0 (bare node)".padEnd(34)} ${f1(node).padStart(7)} ms`);
    row("balsam --help", ["--help"]);
    row("balsam ls --bogus (usage error)", ["ls", "--bogus"]);
    row(`balsam ls (${n} jobs)`, ["ls"]);
    row("balsam ls --wf START", ["ls", "--wf", "START"]);
    await dropDatabase(b.store);
    await b.queues.obliterate("START");
  } finally {
    await b.close();
    db.cleanup();
  }
}
