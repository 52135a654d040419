import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeCliDb, type CliDb } from "../test/support/cli.js";
import { startLauncher } from "../test/support/launcher.js";
import { makeNodes, type NetNode } from "../test/support/netns.js";
import { connect } from "../libs/client/index.js";
import { startMongo, startRedis, waitFor, type ServerHandle } from "../services/dbserver/servers.js";
import { jobOutFileName } from "../libs/models/index.js";
import { num } from "./measure.js";

/**
 * Cluster in a box (DESIGN §6.2): 3 network namespaces as compute nodes, a
 * launcher on each, BENCH_CHAOS_JOBS (5,000) jobs of 50–500 ms, and for
 * BENCH_CHAOS_SECONDS (180) or until they are all done a chaos loop: every
 * 3–6 s a node's link is cut for 2 leases, a launcher frozen for 2 leases,
 * or one killed -9 (and started again). Prints what was kept; asserts only
 * correctness (each job finished once, no two runs of a job at once), never
 * a speed. The same run without chaos gives the jobs/s to compare with.
 */
const LEASE_MS = 3000;
const FENCE_LINE = /^balsam: fenced at (\S+):/m;

interface Cluster {
  nodes: NetNode[];
  servers: ServerHandle[];
  root: string;
}

async function up(): Promise<Cluster> {
  const root = mkdtempSync(join(tmpdir(), "balsam-chaos-"));
  const nodes = makeNodes(3);
  const servers = [await startRedis({ dir: join(root, "redis"), host: "0.0.0.0", appendOnly: false }), await startMongo({ dir: join(root, "mongo"), host: "0.0.0.0", logFile: join(root, "mongo.log") })];
  return { nodes, servers, root };
}

async function down(c: Cluster): Promise<void> {
  await Promise.all(c.servers.map((s) => s.stop()));
  for (const n of c.nodes) n.remove();
  rmSync(c.root, { recursive: true, force: true });
}

/** Each run writes `ID start PID T` and `ID end PID T` (T: /proc/uptime, one clock for all). */
function jobScript(root: string, marks: string): string {
  const p = join(root, "job.sh");
  const m = (what: string) => `read -r up _ < /proc/uptime; echo "$BALSAM_JOB_ID ${what} $$ $up" >> ${marks}`;
  writeFileSync(p, `#!/bin/bash\n${m("start")}\nsleep "$1"\n${m("end")}\n`, { mode: 0o755 });
  return p;
}

/** Runs of one job that overlap: a run killed before its end lived at most its sleep. */
function overlapsIn(marks: string, seconds: Map<string, number>): { overlapping: number; ranTwice: number } {
  const runs = new Map<string, Map<string, { start: number; end?: number }>>();
  for (const line of existsSync(marks) ? readFileSync(marks, "utf8").split("\n") : []) {
    const [id, what, pid, t] = line.split(" ");
    if (!id || !pid || !t) continue;
    const byPid = runs.get(id) ?? new Map<string, { start: number; end?: number }>();
    const r = byPid.get(pid) ?? { start: Number(t) };
    if (what === "end") r.end = Number(t);
    byPid.set(pid, r);
    runs.set(id, byPid);
  }
  let overlapping = 0;
  let ranTwice = 0;
  for (const [id, byPid] of runs) {
    const list = [...byPid.values()].map((r) => ({ start: r.start, last: r.end ?? r.start + (seconds.get(id) ?? 0) })).sort((a, b) => a.start - b.start);
    if (list.length > 1) ranTwice++;
    if (list.some((r, i) => i > 0 && r.start <= list[i - 1]!.last)) overlapping++;
  }
  return { overlapping, ranTwice };
}

async function runCluster(c: Cluster, n: number, chaosSeconds: number): Promise<void> {
  const [redis, mongo] = c.servers as [ServerHandle, ServerHandle];
  const tag = `bench_chaos_${chaosSeconds > 0 ? "on" : "off"}`;
  const here: CliDb = await makeCliDb(mongo.url, redis.url, tag, tag);
  const dbs = await Promise.all(c.nodes.map((nd) => makeCliDb(`mongodb://${nd.hostIp}:${mongo.port}`, `redis://${nd.hostIp}:${redis.port}`, tag, tag)));
  const b = await connect({ dbPath: here.dir });
  const marks = join(c.root, `${tag}.marks`);
  await b.apps.add({ name: "sleepy", executable: jobScript(c.root, marks) });
  const seconds = new Map<string, number>();
  for (let i = 0; i < n; i += 1000) {
    const added = await b.jobs.addMany(Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({ name: `j${i + k}`, workflow: "CHAOS", application: "sleepy", args: (0.05 + Math.random() * 0.45).toFixed(3), nodePackingCount: 4 })));
    for (const j of added) seconds.set(j._id, Number(j.args));
  }
  const env = { BALSAM_LEASE_TTL_MS: String(LEASE_MS), BALSAM_CLAIM_AFTER_MS: "1000" };
  const launch = (i: number) => startLauncher(["--wf-filter", "CHAOS", "--job-mode", "serial"], { ...dbs[i]!.env, ...env, BALSAM_NODELIST: `node${i}` }, c.nodes[i]!.exec);
  const launchers = c.nodes.map((_, i) => launch(i));
  const t0 = performance.now();
  const counts = { cut: 0, frozen: 0, killed: 0 };
  const busy = new Set<number>();
  let stopChaos = false;
  const finished = async () => (await b.jobs.filter({ workflow: "CHAOS", state: "JOB_FINISHED" }).count()) === n;
  const chaos = (async () => {
    const until = Date.now() + chaosSeconds * 1000;
    while (!stopChaos && Date.now() < until) {
      const wait = Date.now() + 3000 + Math.random() * 3000;
      await waitFor(() => stopChaos || Date.now() >= wait, 10_000, "the next chaos event");
      const i = Math.floor(Math.random() * c.nodes.length);
      if (stopChaos || busy.has(i)) continue;
      const kind = (["cut", "frozen", "killed"] as const)[Math.floor(Math.random() * 3)]!;
      counts[kind]++;
      const l = launchers[i]!;
      if (kind === "killed") {
        l.child.kill("SIGKILL");
        await l.exited;
        launchers[i] = launch(i);
        continue;
      }
      busy.add(i);
      if (kind === "cut") c.nodes[i]!.down();
      else l.child.kill("SIGSTOP");
      const back = Date.now() + 2 * LEASE_MS;
      void waitFor(() => Date.now() >= back, 4 * LEASE_MS, "the node to come back").finally(() => {
        if (kind === "cut") c.nodes[i]!.up();
        else l.child.kill("SIGCONT");
        busy.delete(i);
      });
    }
  })();
  // Launchers that exit (nothing left they could see) are started again until every job is finished.
  await waitFor(async () => {
    for (let i = 0; i < launchers.length; i++) if (launchers[i]!.child.exitCode !== null && !busy.has(i)) launchers[i] = launch(i);
    return finished();
    // Every 5 s: a count scans the jobs on FerretDB, load the launchers would feel.
  }, 30 * 60_000, `${n} jobs to finish`, 5000);
  const elapsedS = (performance.now() - t0) / 1000;
  stopChaos = true;
  await chaos;
  await waitFor(() => busy.size === 0, 4 * LEASE_MS, "every node to be back");
  for (const l of launchers) if (l.child.exitCode === null) l.child.kill("SIGTERM");
  await Promise.all(launchers.map((l) => l.exited));

  const jobs = await b.jobs.filter({ workflow: "CHAOS" }).list();
  const once = jobs.filter((j) => j.state === "JOB_FINISHED" && j.stateHistory.filter((h) => h.state === "JOB_FINISHED").length === 1).length;
  let fenced = 0;
  let longestGapS = 0;
  for (const j of jobs) {
    const out = join(j.workdir, jobOutFileName(j.name));
    const m = existsSync(out) ? FENCE_LINE.exec(readFileSync(out, "utf8")) : null;
    if (!m) continue;
    fenced++;
    const at = Date.parse(m[1]!);
    const next = j.stateHistory.find((h) => h.state === "RUNNING" && h.at.getTime() >= at);
    if (next) longestGapS = Math.max(longestGapS, (next.at.getTime() - at) / 1000);
  }
  const { overlapping, ranTwice } = overlapsIn(marks, seconds);
  console.log(
    `${chaosSeconds > 0 ? "with chaos" : "no chaos  "}: ${n} jobs in ${elapsedS.toFixed(1)} s = ${(n / elapsedS).toFixed(1)} jobs/s; finished once ${once}/${n}; ` +
      `overlapping runs ${overlapping}; jobs run more than once ${ranTwice}; jobs fenced ${fenced}; longest fence → recovery ${longestGapS.toFixed(0)} s; ` +
      `events: ${counts.cut} links cut, ${counts.frozen} launchers frozen, ${counts.killed} killed -9`,
  );
  await b.close();
  for (const d of [here, ...dbs]) d.cleanup();
  if (once !== n || overlapping !== 0) throw new Error(`cluster in a box: ${n - once} job(s) not finished exactly once, ${overlapping} job(s) ran twice at once`);
}

export async function benchChaos(): Promise<void> {
  const n = num("BENCH_CHAOS_JOBS", 5000);
  const chaosSeconds = num("BENCH_CHAOS_SECONDS", 180);
  console.log(`\n## cluster in a box: 3 network namespaces, a launcher each, ${n} jobs of 50-500 ms, lease ${LEASE_MS} ms; chaos for ${chaosSeconds} s or until done`);
  if (process.getuid?.() !== 0) {
    console.log("skipped: network namespaces need root");
    return;
  }
  const c = await up();
  try {
    await runCluster(c, n, 0);
    await runCluster(c, n, chaosSeconds);
  } finally {
    await down(c);
  }
}
