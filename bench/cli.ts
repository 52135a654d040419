import { spawnSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { BALSAM_BIN, makeCliDb } from "../test/support/cli.js";
import { connect } from "../libs/client/index.js";
import { buildJob } from "../libs/store/index.js";

const f1 = (x: number) => x.toFixed(1);

/**
 * The CLI on a big database: `ls --wf X` (first page), `ls --by-states`, and
 * `rm` of 100k jobs, each timed as a user sees it (a subprocess, node start-up
 * included — shown beside `balsam --help`, which connects to nothing).
 * BENCH_LS_JOBS (default 1,000,000) jobs in 10 workflows.
 */
export async function benchCli(mongoUrl: string, redisUrl: string): Promise<void> {
  const n = process.env.BENCH_LS_JOBS ? Number(process.env.BENCH_LS_JOBS) : 1_000_000;
  const rmN = Math.min(100_000, Math.floor(n / 10));
  console.log(`\n## the CLI on ${n} jobs (10 workflows of ${n / 10})`);
  const db = await makeCliDb(mongoUrl, redisUrl, "bench_cli", "bench_cli");
  const b = await connect({ dbPath: db.dir });
  try {
    await b.apps.add({ name: "noop", executable: "/bin/true" });
    const t0 = performance.now();
    // Straight inserts: this measures listing, not enqueueing (the enqueue benchmark does that).
    for (let i = 0; i < n; i += 10_000) {
      const docs = Array.from({ length: Math.min(10_000, n - i) }, (_, k) => buildJob({ name: `task${i + k}`, workflow: `WF${(i + k) % 10}`, application: "noop" }));
      await b.store.jobs.insertMany(docs, { ordered: false });
    }
    console.log(`(filled in ${f1((performance.now() - t0) / 1000)} s)`);
    const time = async (args: string[]) => {
      const t = performance.now();
      const r = await db.run(args, { timeoutMs: 3_600_000 });
      if (r.code !== 0) throw new Error(`balsam ${args.join(" ")}: ${r.stderr}`);
      return { ms: performance.now() - t, out: r.stdout };
    };
    const help = await time(["--help"]);
    console.log(`balsam --help (node start-up, no server): ${f1(help.ms)} ms`);
    const ls = await time(["ls", "--wf", "WF3"]);
    console.log(`balsam ls --wf WF3 (first page of ${Math.min(5000, n / 10)} rows): ${f1(ls.ms)} ms`);
    const byStates = await time(["ls", "--by-states"]);
    console.log(`balsam ls --by-states (all ${n}): ${f1(byStates.ms)} ms`);
    const rm = await time(["rm", "jobs", "--wf", "WF5", "--all", "--force"]);
    console.log(`balsam rm jobs --wf WF5 --all --force (${Math.min(rmN, n / 10)} jobs): ${f1(rm.ms)} ms`);
    await b.store.db.dropDatabase();
  } finally {
    await b.close();
    db.cleanup();
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
    await b.store.db.dropDatabase();
    await b.queues.obliterate("START");
  } finally {
    await b.close();
    db.cleanup();
  }
}
