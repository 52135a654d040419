import { execa } from "execa";
import { existsSync, readFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { makeCliDb } from "../test/support/cli.js";
import type { LauncherProc } from "../test/support/launcher.js";
import { connect } from "../libs/client/index.js";
import { dropDatabase } from "../libs/store/index.js";
import { cpuMsOf } from "../libs/platform/proc.js";
import { num, removeAtEnd } from "./measure.js";
import { addNoops, benchLauncherProc, costsLine } from "./launcher.js";

/**
 * Issue 24: the systems a user would pick instead of ours, on the same no-op
 * jobs (/bin/true as a process, 4 at a time) in the same run: Dask
 * distributed, Celery, and raw spawn from a small process (the machine's
 * limit, not the bench's large process's). Then the same with the servers
 * pinned to one core and the launcher and its jobs to the other, as on a
 * compute node whose database is elsewhere. BENCH_PEERS_JOBS (default 5000); BENCH_LAUNCHER_BIN runs another build's launcher (bench/launcher.ts);
 * BENCH_PEERS_BEFORE=/path/to/older/bin/balsam.js runs that build's launcher too, in each round beside this one's.
 */

const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const f0 = (x: number) => x.toFixed(0);
const CONCURRENCY = 4;
const peersDir = fileURLToPath(new URL("../../bench/peers/", import.meta.url));
// Debian's python, where provisioning put Debian's Dask and Celery (a pyenv
// python3 first on PATH would not see them).
const python = process.env.BENCH_PYTHON ?? (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");

/** stdout of `cmd`, or a rejection with its stderr's last line. */
async function run(cmd: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await execa(cmd[0]!, cmd.slice(1), { env, reject: false });
  if (r.exitCode === 0) return r.stdout;
  throw new Error(r.stderr.trim().split("\n").pop() || r.shortMessage);
}

/** Starts of /bin/true per second from a bare node that loads only measure.js's rawSpawnRate, `CONCURRENCY` in flight. */
async function rawSmall(n: number, wrap: string[] = []): Promise<number> {
  const measure = new URL("./measure.js", import.meta.url).href;
  const code = `const { rawSpawnRate } = await import(${JSON.stringify(measure)}); console.log(await rawSpawnRate("/bin/true", ${n}, ${CONCURRENCY}));`;
  return Number((await run([...wrap, process.execPath, "--input-type=module", "-e", code])).trim());
}

/**
 * The same through our spawn helper (vfork) from a bare node: node's own
 * spawn forks, which costs more than Python's vfork-based subprocess, so
 * the peers can outrun rawSmall; this is the machine's limit for how we start
 * processes: jobs/s (NaN when the helper is not built), and the CPU each
 * job's own process used (the helper's reaped children).
 */
async function rawHelper(n: number, wrap: string[] = []): Promise<{ rate: number; jobsMs: number }> {
  const measure = new URL("./measure.js", import.meta.url).href;
  const code = `const { rawHelperSpawnRate } = await import(${JSON.stringify(measure)}); console.log(JSON.stringify(await rawHelperSpawnRate("/bin/true", ${n}, ${CONCURRENCY}) ?? null));`;
  const r = JSON.parse((await run([...wrap, process.execPath, "--input-type=module", "-e", code])).trim()) as { rate: number; jobsCpuMsPerJob: number } | null;
  return r ? { rate: r.rate, jobsMs: r.jobsCpuMsPerJob } : { rate: NaN, jobsMs: NaN };
}

/** /proc/stat counts in USER_HZ ticks, 100 a second on Linux (as libs/platform/proc.ts reads them). */
const TICK_MS = 10;

/** A peer's run: jobs/s, and the whole machine's busy CPU over its timed part, ms a job. */
interface PeerRun {
  rate: number;
  machineMsPerJob: number;
}

/** A peer script's run (bench/peers/*.py), or why it could not run. */
async function peer(script: string, n: number, env: NodeJS.ProcessEnv): Promise<PeerRun | string> {
  try {
    const out = await run([python, `${peersDir}${script}`, String(n), String(CONCURRENCY)], env);
    const r = JSON.parse(out.trim().split("\n").pop()!) as { jobs: number; seconds: number; ok: number; busyTicks: number };
    if (r.ok !== n) return `${r.ok} of ${n} ran`;
    return { rate: n / r.seconds, machineMsPerJob: (r.busyTicks * TICK_MS) / n };
  } catch (err) {
    return (err as Error).message;
  }
}

interface BalsamRun {
  rate: number;
  finished: number;
  costs: string;
  serverCpuMsPerJob: number;
  redisCmdsPerJob: number;
  redisCpuMsPerJob: number;
  /** The launcher process's CPU over the timed part, per job. */
  launcherCpuMsPerJob: number;
  /** This process's CPU (the search: adds, then waits for results) over the timed part, per job. */
  searchCpuMsPerJob: number;
  /** The share of the machine's CPU time left idle over the timed part: near 0, the run is bound by CPU. */
  idle: number;
  /** The whole machine's busy CPU over the timed part (every process: ours, the jobs, the rest of the box), ms a job. */
  machineMsPerJob: number;
  /**
   * "running" only: a second `n` jobs on the same launcher, timed alike. Its
   * first thousands of jobs run before V8 has compiled their hot paths (~0.15
   * ms of launcher CPU a job more, measured): an allocation's launcher runs
   * warm for almost all of its life.
   */
  warm?: { rate: number; launcherCpuMsPerJob: number; serverCpuMsPerJob: number; machineMsPerJob: number };
}

/** The machine's busy CPU between two readings of machineTicks, ms. */
function busyMs(from: { idle: number; all: number }, to: { idle: number; all: number }): number {
  return (to.all - from.all - (to.idle - from.idle)) * TICK_MS;
}

/** The machine's CPU time so far, all cores (USER_HZ ticks): idle and in all. */
function machineTicks(): { idle: number; all: number } {
  const f = (/^cpu (.*)$/m.exec(readFileSync("/proc/stat", "utf8"))?.[1] ?? "").trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  return { idle: (f[3] ?? 0) + (f[4] ?? 0), all: f.slice(0, 8).reduce((a, x) => a + x, 0) };
}

async function redisCommands(r: Redis): Promise<number> {
  return Number(/total_commands_processed:(\d+)/.exec(await r.info("stats"))?.[1] ?? 0);
}

/**
 * One serial launcher, packing `CONCURRENCY`, on `n` no-op jobs.
 * "running" is timed as the peers are: the launcher is already up (its
 * allocation started) and has run one warm-up job; the clock runs from the
 * first add (insert and enqueue included) to the last result read back
 * through `wait()` (results()); then a second batch on the same launcher,
 * warm (`warm`). "whole" is the launcher's life: the jobs added
 * first, timed from its start (module loading, connecting) to its exit
 * (its idle check deciding nothing is left).
 */
async function balsamRun(mongoUrl: string, redisUrl: string, mongoPid: number | undefined, redisPid: number, n: number, mode: "running" | "whole", wrap: string[] = [], bin?: string): Promise<BalsamRun> {
  const db = await makeCliDb(mongoUrl, redisUrl, "bench_peers", "bench_peers");
  const b = await connect({ dbPath: db.dir });
  const r = new Redis(redisUrl);
  try {
    await b.apps.add({ name: "true", executable: "/bin/true" });
    let l: LauncherProc;
    const env = { ...db.env, BALSAM_NODELIST: "node1" };
    // What the servers (and, running, the launcher) have done so far, and when.
    const counters = async (launcherPid?: number) => {
      const { user, system } = process.cpuUsage();
      return { cmds: await redisCommands(r), mongo: cpuMsOf(mongoPid), redis: cpuMsOf(redisPid), launcher: cpuMsOf(launcherPid), search: (user + system) / 1000, ticks: machineTicks(), t: performance.now() };
    };
    let at0: Awaited<ReturnType<typeof counters>>;
    if (mode === "whole") {
      await addNoops(b, "PEERS", n, "true", CONCURRENCY);
      at0 = await counters();
      l = benchLauncherProc(["--wf-filter", "PEERS", "--job-mode", "serial"], env, wrap, bin);
      await l.exited;
    } else {
      l = benchLauncherProc(["--wf-filter", "PEERS", "--job-mode", "serial", "--persistent"], env, wrap, bin);
      const [warm] = await b.jobs.addMany([{ name: "warm-up", workflow: "PEERS", application: "true" }]);
      await b.wait([warm!._id], { timeoutMs: 120_000 });
      at0 = await counters(l.child.pid);
      const ids = await addNoops(b, "PEERS", n, "true", CONCURRENCY);
      const seen = (await b.wait(ids, { timeoutMs: 1_800_000 })).length;
      if (seen < n) throw new Error(`only ${seen} of ${n} results arrived`);
    }
    const at1 = await counters(mode === "running" ? l.child.pid : undefined);
    const s = (at1.t - at0.t) / 1000;
    let warm: BalsamRun["warm"];
    if (mode === "running") {
      const ids = await addNoops(b, "PEERS", n, "true", CONCURRENCY);
      const seen = (await b.wait(ids, { timeoutMs: 1_800_000 })).length;
      if (seen < n) throw new Error(`only ${seen} of the warm ${n} results arrived`);
      const at2 = await counters(l.child.pid);
      warm = {
        rate: n / ((at2.t - at1.t) / 1000),
        launcherCpuMsPerJob: (at2.launcher - at1.launcher) / n,
        serverCpuMsPerJob: (at2.mongo - at1.mongo) / n,
        machineMsPerJob: busyMs(at1.ticks, at2.ticks) / n,
      };
      l.child.kill("SIGTERM");
      await l.exited;
    }
    const out = {
      rate: n / s,
      warm,
      // Less the warm-up job and the warm batch.
      finished: await b.jobs.filter({ workflow: "PEERS", state: "JOB_FINISHED" }).count() - (mode === "running" ? 1 + n : 0),
      costs: costsLine(l),
      serverCpuMsPerJob: (at1.mongo - at0.mongo) / n,
      // Less the INFO at1 sent; the launcher's idle checks (whole: its start-up too) are in it.
      redisCmdsPerJob: (at1.cmds - at0.cmds - 1) / n,
      launcherCpuMsPerJob: mode === "running" ? (at1.launcher - at0.launcher) / n : NaN,
      redisCpuMsPerJob: (at1.redis - at0.redis) / n,
      searchCpuMsPerJob: mode === "running" ? (at1.search - at0.search) / n : NaN,
      idle: (at1.ticks.idle - at0.ticks.idle) / Math.max(1, at1.ticks.all - at0.ticks.all),
      machineMsPerJob: busyMs(at0.ticks, at1.ticks) / n,
    };
    await dropDatabase(b.store);
    return out;
  } finally {
    r.disconnect();
    await b.close();
    // Not before the next run: it would make its job directories slower (measure.ts).
    removeAtEnd(() => db.cleanup());
  }
}

function showPeer(name: string, v: number | string, ours: number, raw: number): void {
  if (typeof v === "string") console.log(`${name.padEnd(34)} not run: ${v}`);
  else console.log(`${name.padEnd(34)} ${f1(v).padStart(7)} jobs/s  ${f2(v / raw)} of raw   balsam is ${f2(ours / v)}x`);
}

/** One round: each peer, then ours, one after the other. */
interface Round {
  dask: number | string;
  celery: number | string;
  /** The machine's busy CPU a job over each peer's timed part (none when it did not run). */
  machineMs: { dask?: number; celery?: number };
  ours: BalsamRun;
  /** BENCH_PEERS_BEFORE's launcher on the same jobs, in the same round. */
  before?: BalsamRun;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Ours over a peer's rate, round by round (a peer that did not run: none). */
const paired = (rounds: readonly Round[], peer: "dask" | "celery", warm = false): number[] =>
  rounds.flatMap((r) => {
    const ours = warm ? r.ours.warm?.rate : r.ours.rate;
    return typeof r[peer] === "number" && ours !== undefined ? [ours / (r[peer] as number)] : [];
  });

export async function benchPeers(mongoUrl: string, redisUrl: string, mongoPid: number | undefined): Promise<void> {
  const n = num("BENCH_PEERS_JOBS", 5000);
  // A VM's speed drifts by a fifth within minutes (seen here): with several rounds each ratio is taken within a round and their median printed.
  const rounds = Math.max(1, num("BENCH_PEERS_ROUNDS", 1));
  console.log(`\n## the peers: ${n} no-op jobs (/bin/true as a process, ${CONCURRENCY} at a time), same run${rounds > 1 ? `, ${rounds} rounds` : ""}`);
  const raw = await rawSmall(Math.min(n, 5000));
  const helper = await rawHelper(Math.min(n, 5000));
  // Another build's bin/balsam.js: its launcher runs the same jobs in each round beside this build's (before and after in one run).
  const before = process.env.BENCH_PEERS_BEFORE || undefined;
  const r = new Redis(redisUrl);
  const redisPid = Number(/process_id:(\d+)/.exec(await r.info("server"))?.[1] ?? 0);
  r.disconnect();
  const done: Round[] = [];
  for (let i = 0; i < rounds; i++) {
    const d = await peer("dask_noop.py", n, {});
    // The bench's own Redis, another database number: Celery's keys stay apart from the queues'.
    const c = await peer("celery_noop.py", n, { BENCH_CELERY_REDIS: `${redisUrl.replace(/\/\d*$/, "")}/9` });
    const rate = (p: PeerRun | string) => (typeof p === "string" ? p : p.rate);
    const ms = (p: PeerRun | string) => (typeof p === "string" ? undefined : p.machineMsPerJob);
    const peers = { dask: rate(d), celery: rate(c), machineMs: { dask: ms(d), celery: ms(c) } };
    const ours = () => balsamRun(mongoUrl, redisUrl, mongoPid, redisPid, n, "running");
    const older = () => balsamRun(mongoUrl, redisUrl, mongoPid, redisPid, n, "running", [], before);
    if (!before) done.push({ ...peers, ours: await ours() });
    // Which build goes first alternates: a VM's drift within a round then falls on each in turn.
    else if (i % 2) done.push({ ...peers, before: await older(), ours: await ours() });
    else done.push({ ...peers, ours: await ours(), before: await older() });
  }
  await peersAndOurs(mongoUrl, redisUrl, mongoPid, redisPid, n, raw, helper, done);
  if (before) showBefore(done, before);
}

/** This build's launcher over BENCH_PEERS_BEFORE's, round by round, and the launcher's CPU a job in each. */
function showBefore(rounds: readonly Round[], bin: string): void {
  const pairs = rounds.flatMap((r) => (r.before ? [{ ours: r.ours, before: r.before }] : []));
  const list = (f: (p: (typeof pairs)[number]) => string) => pairs.map(f).join(", ");
  const warmOf = (b: BalsamRun) => b.warm ?? { rate: NaN, launcherCpuMsPerJob: NaN };
  console.log(`before (${bin}) and this build, same jobs and servers, each round (alternating which goes first):`);
  console.log(`  jobs/s cold ${list((p) => `${f1(p.before.rate)} → ${f1(p.ours.rate)}`)}; warm ${list((p) => `${f1(warmOf(p.before).rate)} → ${f1(warmOf(p.ours).rate)}`)}`);
  console.log(`  launcher ms CPU a job cold ${list((p) => `${f2(p.before.launcherCpuMsPerJob)} → ${f2(p.ours.launcherCpuMsPerJob)}`)}; warm ${list((p) => `${f2(warmOf(p.before).launcherCpuMsPerJob)} → ${f2(warmOf(p.ours).launcherCpuMsPerJob)}`)}`);
  console.log(`  database server ms CPU a job cold ${list((p) => `${f2(p.before.serverCpuMsPerJob)} → ${f2(p.ours.serverCpuMsPerJob)}`)}; Redis commands a job ${list((p) => `${f1(p.before.redisCmdsPerJob)} → ${f1(p.ours.redisCmdsPerJob)}`)}`);
  const cold = median(pairs.map((p) => p.ours.rate / p.before.rate));
  const cpu = median(pairs.map((p) => p.ours.launcherCpuMsPerJob / p.before.launcherCpuMsPerJob));
  console.log(`  medians of the rounds: rate ${f2(cold)}x, launcher CPU a job ${f2(cpu)}x`);
}

/**
 * What a job costs the whole machine, every process counted, beside what the
 * no-op process itself costs: on a VM where an exec is dear (3–4 ms of CPU
 * for /bin/true, measured on one kind of these 2-core boxes, ~1 ms on the
 * other) that process is most of every system's cost, and the rates say
 * little about the rest. What is left is what each system adds to run a job
 * and hand back its result. The same own cost (our helper's raw runs) is
 * taken from each: Python's subprocess execs with vfork too.
 */
function showMachineCost(rounds: readonly Round[], ownMs: readonly number[]): void {
  const med = (xs: ReadonlyArray<number | undefined>): number | undefined => {
    const ok = xs.filter((x): x is number => x !== undefined && !Number.isNaN(x));
    return ok.length ? median(ok) : undefined;
  };
  const cost = {
    Dask: med(rounds.map((r) => r.machineMs.dask)),
    Celery: med(rounds.map((r) => r.machineMs.celery)),
    balsam: med(rounds.map((r) => r.ours.machineMsPerJob)),
    "balsam warm": med(rounds.map((r) => r.ours.warm?.machineMsPerJob)),
  };
  const own = med(ownMs);
  const shown = Object.entries(cost).filter((e): e is [string, number] => e[1] !== undefined);
  console.log(`the machine's busy CPU a job over each timed part (every process, /proc/stat; medians of the rounds): ${shown.map(([k, v]) => `${k} ${f2(v)}`).join(", ")} ms`);
  if (own === undefined) return;
  const added = (v: number) => v - own;
  const ours = cost.balsam === undefined ? undefined : added(cost.balsam);
  const over = (["Dask", "Celery"] as const).flatMap((k) => (cost[k] !== undefined && ours !== undefined ? [`${f2(ours / added(cost[k]!))}x ${k}'s`] : []));
  console.log(`  less each job's own process (${f2(own)} ms, the helper's raw runs), what each system adds a job: ${shown.map(([k, v]) => `${k} ${f2(added(v))}`).join(", ")} ms${over.length ? `; balsam's is ${over.join(", ")}` : ""}`);
}

async function peersAndOurs(mongoUrl: string, redisUrl: string, mongoPid: number | undefined, redisPid: number, n: number, raw: number, helper: { rate: number; jobsMs: number }, rounds: readonly Round[]): Promise<void> {
  // Figures of the round whose rate of ours is the median (the lower middle one of an even count).
  const byRate = [...rounds].sort((a, b) => a.ours.rate - b.ours.rate);
  const mid = byRate[Math.floor((byRate.length - 1) / 2)]!;
  const ours = mid.ours;
  const peerRate = (k: "dask" | "celery"): number | string => {
    const rates = rounds.flatMap((r) => (typeof r[k] === "number" ? [r[k] as number] : []));
    return rates.length ? median(rates) : (rounds[0]![k] as string);
  };
  const dask = peerRate("dask");
  const celery = peerRate("celery");
  const whole = await balsamRun(mongoUrl, redisUrl, mongoPid, redisPid, n, "whole");
  const rawAfter = await rawSmall(Math.min(n, 5000));
  const helperAfter = await rawHelper(Math.min(n, 5000));
  // NaN (no helper) drops out of the max.
  const limit = Math.max(raw, rawAfter, ...[helper.rate, helperAfter.rate].filter((x) => !Number.isNaN(x)));
  // Issue 24 set its floor against raw spawn from a small node process (its table's "raw" row); the limit above is
  // stricter (our helper's vfork spawns twice as fast). Both ratios are printed so a floor is read against either.
  const fromNode = Math.max(raw, rawAfter);
  const ofNode = (rate: number) => `${f2(rate / fromNode)} of spawn from node`;
  console.log(`raw spawn from a bare node, ${CONCURRENCY} in flight     ${f1(raw)} jobs/s before, ${f1(rawAfter)} after`);
  console.log(`raw spawn through balsam-spawn (vfork), from a bare node  ${f1(helper.rate)} jobs/s before, ${f1(helperAfter.rate)} after (the limit, the best of the four: ${f1(limit)}); each job's own process ${f2(helper.jobsMs)} / ${f2(helperAfter.jobsMs)} ms CPU`);
  showPeer(`Dask distributed, ${CONCURRENCY} procs x 1 thread`, dask, ours.rate, limit);
  showPeer(`Celery, Redis broker, prefork ${CONCURRENCY}`, celery, ours.rate, limit);
  console.log(`${"balsam, one serial launcher".padEnd(34)} ${f1(ours.rate).padStart(7)} jobs/s  ${f2(ours.rate / limit)} of raw   (${ofNode(ours.rate)}; ${ours.finished} of ${n} finished; timed as the peers: first add to last result, the launcher already up)`);
  console.log(`  per job: ${mongoPid ? `database server ${f2(ours.serverCpuMsPerJob)} ms CPU, ` : ""}Redis ${f2(ours.redisCpuMsPerJob)} ms CPU and ${f1(ours.redisCmdsPerJob)} commands (the calls inside BullMQ's scripts counted), launcher ${f2(ours.launcherCpuMsPerJob)} ms CPU, the search (this process: adds, waits) ${f2(ours.searchCpuMsPerJob)} ms CPU; the machine ${f0(ours.idle * 100)}% idle; the launcher's whole life: ${ours.costs}`);
  if (ours.warm) {
    const over = (peer: number | string, name: string) => (typeof peer === "number" ? `${name} ${f2(ours.warm!.rate / peer)}x` : "");
    const ratios = [over(dask, "Dask"), over(celery, "Celery")].filter(Boolean).join(", ");
    console.log(`${"balsam, the same launcher warm".padEnd(34)} ${f1(ours.warm.rate).padStart(7)} jobs/s  ${f2(ours.warm.rate / limit)} of raw   ${ratios ? `balsam is ${ratios} ` : ""}(${ofNode(ours.warm.rate)}; a second ${n} jobs on the launcher that ran the first, timed alike: V8 has compiled its hot paths)`);
    console.log(`  per job: ${mongoPid ? `database server ${f2(ours.warm.serverCpuMsPerJob)} ms CPU, ` : ""}launcher ${f2(ours.warm.launcherCpuMsPerJob)} ms CPU`);
  }
  console.log(`${"balsam, the launcher's whole life".padEnd(34)} ${f1(whole.rate).padStart(7)} jobs/s  ${f2(whole.rate / limit)} of raw   (${ofNode(whole.rate)}; ${whole.finished} of ${n} finished; jobs added first, timed from its start to its exit)`);
  console.log(`  per job: ${mongoPid ? `database server ${f2(whole.serverCpuMsPerJob)} ms CPU, ` : ""}Redis ${f2(whole.redisCpuMsPerJob)} ms CPU and ${f1(whole.redisCmdsPerJob)} commands; launcher: ${whole.costs}`);
  if (rounds.length > 1) {
    const show = (x: number | string) => (typeof x === "number" ? f1(x) : "-");
    console.log(`rounds (Dask, Celery, balsam in turn; the rates above are medians, our detail is the median round's): ${rounds.map((r, i) => `${i + 1}: ${show(r.dask)} / ${show(r.celery)} / ${f1(r.ours.rate)}`).join("; ")}`);
    const pd = paired(rounds, "dask");
    const pc = paired(rounds, "celery");
    console.log(`balsam over each peer within a round: Dask ${pd.map(f2).join(", ") || "-"}${pd.length ? ` (median ${f2(median(pd))})` : ""}; Celery ${pc.map(f2).join(", ") || "-"}${pc.length ? ` (median ${f2(median(pc))})` : ""}`);
    const wd = paired(rounds, "dask", true);
    const wc = paired(rounds, "celery", true);
    if (wd.length || wc.length) console.log(`the warm launcher over each peer within a round: Dask ${wd.map(f2).join(", ") || "-"}${wd.length ? ` (median ${f2(median(wd))})` : ""}; Celery ${wc.map(f2).join(", ") || "-"}${wc.length ? ` (median ${f2(median(wc))})` : ""}`);
  }

  showMachineCost(rounds, [helper.jobsMs, helperAfter.jobsMs]);

  // A compute node whose database is elsewhere: the servers on core 0, the
  // launcher and its jobs on core 1, against raw spawn pinned to core 1.
  const pins = [mongoPid, redisPid].filter((p): p is number => !!p);
  try {
    for (const p of pins) await run(["taskset", "-a", "-p", "-c", "0", String(p)]);
  } catch (err) {
    console.log(`pinned: not run (${(err as Error).message})`);
    return;
  }
  try {
    const pinnedRaws = [await rawSmall(Math.min(n, 5000), ["taskset", "-c", "1"]), (await rawHelper(Math.min(n, 5000), ["taskset", "-c", "1"])).rate];
    const rawPinned = Math.max(...pinnedRaws.filter((x) => !Number.isNaN(x)));
    // The search that adds the jobs and reads the results runs on a login node: here, the servers' core.
    await run(["taskset", "-a", "-p", "-c", "0", String(process.pid)]);
    const pinned = await balsamRun(mongoUrl, redisUrl, mongoPid, redisPid, n, "running", ["taskset", "-c", "1"]);
    console.log(`pinned (servers on core 0; launcher and jobs on core 1): raw spawn ${f1(pinnedRaws[0]!)} jobs/s from node, ${f1(pinnedRaws[1]!)} through balsam-spawn; balsam ${f1(pinned.rate)} jobs/s = ${f2(pinned.rate / rawPinned)} of raw (${f2(pinned.rate / pinnedRaws[0]!)} of spawn from node); launcher ${f2(pinned.launcherCpuMsPerJob)} ms CPU per job${pinned.warm ? `; warm (a second ${n}) ${f1(pinned.warm.rate)} jobs/s = ${f2(pinned.warm.rate / rawPinned)} of raw (${f2(pinned.warm.rate / pinnedRaws[0]!)} of spawn from node), launcher ${f2(pinned.warm.launcherCpuMsPerJob)} ms CPU per job` : ""} (its whole life: ${pinned.costs})`);
  } finally {
    for (const p of [...pins, process.pid]) await run(["taskset", "-a", "-p", "-c", `0-${cpus().length - 1}`, String(p)]).catch(() => "");
  }
}
