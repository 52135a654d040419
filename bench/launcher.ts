import { readFileSync } from "node:fs";
import { makeCliDb } from "../test/support/cli.js";
import { startLauncher, type LauncherProc } from "../test/support/launcher.js";
import { connect, type Balsam } from "../libs/client/index.js";
import { waitFor } from "../services/dbserver/servers.js";
import { num, pct, rawSpawnRate, removeAtEnd } from "./measure.js";
import { cpuMsOf } from "../libs/platform/proc.js";
import { dropDatabase } from "../libs/store/index.js";

/**
 * The launcher's throughput (DESIGN §7): no-op jobs end to end beside the
 * raw spawn rate measured right after on the same machine, and what each
 * job costs — database commands and CPU of the launcher (its own count, from
 * its last log line), CPU of the database server (from /proc) — plus
 * dispatch latency, RSS over the run, and several launchers sharing queues.
 */

const f1 = (x: number) => x.toFixed(1);

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Adds `n` no-op jobs, 10,000 an `addMany`; their ids, in order. */
export async function addNoops(b: Balsam, workflow: string, n: number, app: string, packing: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 10_000) {
    const jobs = await b.jobs.addMany(Array.from({ length: Math.min(10_000, n - i) }, (_, k) => ({ name: `t${i + k}`, workflow, application: app, nodePackingCount: packing })));
    for (const j of jobs) ids.push(j._id);
  }
  return ids;
}

/**
 * `BENCH_LAUNCHER_BIN=/path/to/older/bin/balsam.js` runs that build's
 * launcher instead, on the same jobs and servers: before and after in one run.
 */
export function benchLauncherProc(args: string[], env: NodeJS.ProcessEnv, wrap: string[] = [], bin = process.env.BENCH_LAUNCHER_BIN): LauncherProc {
  // Empty is unset: `BENCH_LAUNCHER_BIN= npm run bench` runs this build.
  return startLauncher(args, env, wrap, bin || undefined);
}

/** The launcher's own account of its costs, from the line it logs when it stops. */
export function costsLine(l: LauncherProc): string {
  const m = /killed; (\d+ database commands .*)$/m.exec(l.output());
  return m ? m[1]! : "(no stop line)";
}

export async function benchLauncher(mongoUrl: string, redisUrl: string, mongoPid: number | undefined): Promise<void> {
  const n = num("BENCH_LAUNCHER_JOBS", 20_000);
  const packing = 4;
  console.log(`\n## ${n} no-op jobs (/bin/true), one serial launcher, node_packing_count ${packing}`);
  const db = await makeCliDb(mongoUrl, redisUrl, "bench_launch", "bench_launch");
  const b: Balsam = await connect({ dbPath: db.dir });
  const env = { ...db.env, BALSAM_NODELIST: "node1" };
  try {
    await b.apps.add({ name: "true", executable: "/bin/true" });
    await addNoops(b, "BENCH", n, "true", packing);
    const serverCpu0 = cpuMsOf(mongoPid);
    const t = performance.now();
    const l = benchLauncherProc(["--wf-filter", "BENCH", "--job-mode", "serial"], env);
    let peak = 0;
    let launcherCpu = 0;
    const samples: number[] = [];
    const sampler = setInterval(() => {
      const r = rssOf(l.child.pid ?? 0);
      if (r > 0) samples.push(r);
      peak = Math.max(peak, r);
      launcherCpu = Math.max(launcherCpu, cpuMsOf(l.child.pid));
    }, 200);
    const code = await l.exited;
    clearInterval(sampler);
    const s = (performance.now() - t) / 1000;
    const serverCpu = cpuMsOf(mongoPid) - serverCpu0;
    const counts = await b.jobs.filter({ workflow: "BENCH" }).byState();
    const raw = await rawSpawnRate("/bin/true", Math.min(n, 3000), packing);
    console.log(`launcher exit ${code}, states ${JSON.stringify(counts)}`);
    console.log(`end to end: ${f1(n / s)} jobs/s (${f1(s)} s incl. start-up); raw /bin/true spawn from Node at ${packing} in flight: ${f1(raw)}/s; ratio ${(n / s / raw).toFixed(3)}`);
    console.log(`launcher: ${costsLine(l)}; from /proc (sampled every 200 ms, so a little low): ${(launcherCpu / n).toFixed(2)} ms CPU per job`);
    if (mongoPid) console.log(`database server CPU: ${f1(serverCpu)} ms (${(serverCpu / n).toFixed(2)} ms per job)`);
    const third = Math.max(1, Math.floor(samples.length / 3));
    const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length);
    console.log(`launcher RSS: peak ${f1(peak)} MiB; mean first third ${f1(mean(samples.slice(0, third)))} MiB, last third ${f1(mean(samples.slice(-third)))} MiB`);

    // Dispatch latency: jobs added one at a time to an idle persistent
    // launcher; the job prints the time it started, so READY → process
    // started is measured whether or not the job was recorded RUNNING.
    const m = num("BENCH_LATENCY_JOBS", 100);
    if (m > 0) {
      await b.apps.add({ name: "stamp", executable: "/bin/sh -c 'echo BALSAM-RESULT: $(date +%s%3N)'" });
      const lp = benchLauncherProc(["--wf-filter", "LAT", "--job-mode", "serial", "--persistent"], env);
      await waitFor(() => lp.output().includes("started:"), 30_000, "the launcher to start");
      const lats: number[] = [];
      const results: number[] = [];
      for (let i = 0; i < m; i++) {
        const t0 = Date.now();
        const j = await b.jobs.add({ name: `lat${i}`, workflow: "LAT", application: "stamp" });
        const [done] = await b.wait([j._id], { timeoutMs: 30_000 });
        results.push(Date.now() - t0);
        const ready = j.stateHistory.find((x) => x.state === "READY")!.at.getTime();
        lats.push(Number(done!.result) - ready);
      }
      lp.child.kill("SIGTERM");
      await lp.exited;
      console.log(`dispatch READY → process started, ${m} jobs added one at a time: p50 ${pct(lats, 50)} ms, p99 ${pct(lats, 99)} ms; add → result in hand: p50 ${pct(results, 50)} ms, p99 ${pct(results, 99)} ms`);
    }
    await dropDatabase(b.store);
  } finally {
    await b.close();
    removeAtEnd(() => db.cleanup());
  }
  await benchManyLaunchers(mongoUrl, redisUrl, mongoPid);
}

/** Several launchers pulling from shared queues: one workflow for four, and two workflows for two each. */
async function benchManyLaunchers(mongoUrl: string, redisUrl: string, mongoPid: number | undefined): Promise<void> {
  const n = num("BENCH_MANY_JOBS", 20_000);
  if (n <= 0) return;
  for (const shape of [{ wfs: ["ONEWF"], per: 4 }, { wfs: ["TWO_A", "TWO_B"], per: 2 }]) {
    const count = shape.wfs.length * shape.per;
    console.log(`\n## ${n} no-op jobs in ${shape.wfs.length} workflow(s), ${count} serial launchers (${shape.per} per workflow), node_packing_count 4`);
    const db = await makeCliDb(mongoUrl, redisUrl, "bench_many", "bench_many");
    const b = await connect({ dbPath: db.dir });
    try {
      await b.apps.add({ name: "true", executable: "/bin/true" });
      for (const wf of shape.wfs) await addNoops(b, wf, Math.floor(n / shape.wfs.length), "true", 4);
      const serverCpu0 = cpuMsOf(mongoPid);
      const t = performance.now();
      const ls = shape.wfs.flatMap((wf) => Array.from({ length: shape.per }, () => benchLauncherProc(["--wf-filter", wf, "--job-mode", "serial"], { ...db.env, BALSAM_NODELIST: "node1" })));
      await Promise.all(ls.map((l) => l.exited));
      const s = (performance.now() - t) / 1000;
      const total = Math.floor(n / shape.wfs.length) * shape.wfs.length;
      const finished = (await b.jobs.filter({ state: "JOB_FINISHED" }).count());
      console.log(`aggregate: ${f1(total / s)} jobs/s (${f1(s)} s), ${finished} of ${total} finished`);
      ls.forEach((l, i) => console.log(`  launcher ${i + 1}: ${costsLine(l)}`));
      if (mongoPid) console.log(`database server CPU: ${((cpuMsOf(mongoPid) - serverCpu0) / total).toFixed(2)} ms per job`);
      await dropDatabase(b.store);
    } finally {
      await b.close();
      removeAtEnd(() => db.cleanup());
    }
  }
}
