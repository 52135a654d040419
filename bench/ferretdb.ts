/**
 * What each speed-only patch of our FerretDB series buys (issue 23): a patch
 * that no test needs earns its place by a line here, with and without it, in
 * one run. Each patch builds on the ones before it, so "without P" is the
 * series up to the patch before P and "with P" the series up to P
 * (scripts/ferretdb/build-prefix.sh builds and caches both). Both servers
 * run at once with the flags and environment of services/dbserver/servers.ts,
 * get the same documents, and are measured in alternating rounds (A B, B A,
 * …): the medians and the rounds' ranges are printed, and a patch whose
 * ranges overlap is called out as within noise. Server CPU is the server's
 * utime+stime from /proc (10 ms ticks), round trip the median per operation.
 * A patch that trades one cost for another has several lines (0017, JSONB
 * storage: cheaper index upkeep on writes, a rendering on reads: updates and
 * projected finds, after the fill's insert CPU; 0018, whole-document
 * decoding: updates and unprojected finds).
 *
 * Then 0010 (counts from the indexes, which has a test of its own) is timed
 * the same way for `ls --by-states` (countByState), since issue 23 asks
 * whether per-(workflow, state) counters should replace it.
 *
 * Sizes: BENCH_FERRETDB_JOBS (default 1000: the projected finds read that
 * many; _id lookups use 2×, a workflow's first page 10×),
 * BENCH_FERRETDB_FINDS (default 50 finds a round), BENCH_FERRETDB_ROUNDS
 * (default 3), BENCH_FERRETDB_COUNT_JOBS (default 20000, the 0010 lines;
 * 0 skips them; without 0010 a count costs ~0.4 ms of server CPU per job),
 * BENCH_FERRETDB_COUNT_ROUNDS (default the rounds), BENCH_FERRETDB_PATCHES
 * (e.g. "0013,0014,0010": only those).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Job } from "../libs/models/index.js";
import { cpuMsOf } from "../libs/platform/proc.js";
import { buildJob, countByState, findJobs, insertJobs, readJob, recordTransitions, Store } from "../libs/store/index.js";
import { findMongoBinary, projectRoot, startMongo, type MongoHandle } from "../services/dbserver/servers.js";
import { num, pct } from "./measure.js";

/** The `ls` table's projection (cli/ls.ts with the default fields). */
const LS_PROJECTION = { _id: 1, name: 1, workflow: 1, application: 1, state: 1, createdAt: 1 } as const;

interface Sample {
  /** Server CPU per unit, µs. */
  cpuUs: number;
  /** Median round trip per unit, µs. */
  rtUs: number;
}

interface Micro {
  what: string;
  /** What one figure is per. */
  unit: string;
  /** Jobs filled into both servers before the rounds (the same documents). */
  jobs: number;
  /** One measured round on one server; `docs` are the filled jobs. */
  round(store: Store, pid: number, docs: readonly Job[]): Promise<Sample>;
}

const median = (xs: readonly number[]) => pct(xs, 50);

async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/**
 * `finds` finds of `filter` with the `ls` projection (or, `whole`, none: whole
 * documents, as `ls --verbose` and the API read them), a page of `limit`;
 * per returned document.
 */
function projectedFinds(what: string, jobs: number, finds: number, limit: number, filter: { workflow?: string }, whole = false): Micro {
  return {
    what,
    unit: "doc",
    jobs,
    async round(store, pid) {
      const times: number[] = [];
      let returned = 0;
      const cpu0 = cpuMsOf(pid);
      for (let i = 0; i < finds; i++) {
        times.push(
          await timeMs(async () => {
            returned += (await findJobs(store, filter, whole ? { limit } : { limit, projection: LS_PROJECTION })).length;
          }),
        );
      }
      const perFind = returned / finds;
      return { cpuUs: ((cpuMsOf(pid) - cpu0) * 1000) / returned, rtUs: (median(times) * 1000) / perFind };
    },
  };
}

/** Finds of whole documents (no projection): decoded as every update's read of its document decodes them. */
function wholeFinds(jobs: number, finds: number): Micro {
  return projectedFinds(`${finds} finds of ${jobs} whole jobs (no projection)`, jobs, finds, jobs + 1, {}, true);
}

/** `lookups` reads of one job by `_id`, ids picked at random. */
function idLookups(jobs: number, lookups: number): Micro {
  return {
    what: `${lookups} _id lookups among ${jobs} jobs`,
    unit: "lookup",
    jobs,
    async round(store, pid, docs) {
      const times: number[] = [];
      const cpu0 = cpuMsOf(pid);
      for (let i = 0; i < lookups; i++) {
        const id = docs[Math.floor(Math.random() * docs.length)]?._id ?? "";
        times.push(await timeMs(() => readJob(store, id)));
      }
      return { cpuUs: ((cpuMsOf(pid) - cpu0) * 1000) / lookups, rtUs: median(times) * 1000 };
    },
  };
}

/**
 * A launcher writer's state changes (bench/server.ts benchWrites): `jobs`
 * fresh RUNNING jobs a round (inserted outside the timing), each moved to
 * JOB_FINISHED by one conditional update, 500 per unordered bulk.
 */
function stateChanges(jobs: number, bulk = 500): Micro {
  let round = 0;
  return {
    what: `${jobs} conditional updates (3-step transitions), ${bulk} per bulk`,
    unit: "update",
    jobs: 0,
    async round(store, pid) {
      round++;
      const docs = Array.from({ length: jobs }, (_, i) => ({ ...buildJob({ name: `w${round}.${i}`, workflow: "W", application: "noop" }), state: "RUNNING" as const }));
      for (let i = 0; i < jobs; i += 500) await insertJobs(store, docs.slice(i, i + 500));
      const path = [{ state: "RUN_DONE" }, { state: "POSTPROCESSED" }, { state: "JOB_FINISHED" }] as const;
      const cpu0 = cpuMsOf(pid);
      const ms = await timeMs(async () => {
        for (let i = 0; i < jobs; i += bulk) {
          await recordTransitions(store, docs.slice(i, i + bulk).map((d) => ({ id: d._id, from: "RUNNING" as const, path, set: { exitCode: 0 } })));
        }
      });
      return { cpuUs: ((cpuMsOf(pid) - cpu0) * 1000) / jobs, rtUs: (ms * 1000) / jobs };
    },
  };
}

/** `jobs` fresh job documents a round, 500 per unordered insertMany, as `addMany` writes them. */
function inserts(jobs: number): Micro {
  let round = 0;
  return {
    what: `${jobs} inserts of new jobs, 500 per command`,
    unit: "insert",
    jobs: 0,
    async round(store, pid) {
      round++;
      const docs = Array.from({ length: jobs }, (_, i) => buildJob({ name: `i${round}.${i}`, workflow: "W", application: "noop" }));
      const cpu0 = cpuMsOf(pid);
      const ms = await timeMs(async () => {
        for (let i = 0; i < jobs; i += 500) await insertJobs(store, docs.slice(i, i + 500));
      });
      return { cpuUs: ((cpuMsOf(pid) - cpu0) * 1000) / jobs, rtUs: (ms * 1000) / jobs };
    },
  };
}

function microsFor(patch: string): Micro[] {
  const n = num("BENCH_FERRETDB_JOBS", 1000);
  const finds = num("BENCH_FERRETDB_FINDS", 50);
  switch (patch) {
    case "0017":
      // JSONB makes index upkeep cheaper and reading dearer (each document is rendered back to text): both sides.
      // The finds run first, so the updates' fresh jobs are not among the n + 1 they read.
      return [projectedFinds(`${finds} finds of ${n} jobs`, n, finds, n + 1, {}), stateChanges(2 * n)];
    case "0018":
      // Whole documents are decoded by every unprojected find and by every update (its read of the document); finds first, as for 0017.
      return [wholeFinds(n, finds), stateChanges(2 * n)];
    case "0019":
      // Statements prepared once a command (the transaction, the collection's metadata) weigh most in a
      // launcher's small bulks; those prepared once an update in the large ones.
      return [stateChanges(2 * n, 8), stateChanges(2 * n)];
    case "0022":
      // Whole documents decoded from JSONB: every unprojected find and every update's read; finds first, as for 0018.
      return [wholeFinds(n, finds), stateChanges(2 * n, 8)];
    case "0020":
    case "0021":
    case "0023":
    case "0024":
    case "0025":
      // Every insert and every update marshals its whole document (0020) and stores it as JSONB (0021); each
      // command's documents were converted from BSON twice (0023); each is validated whole (0024); each message was
      // decoded deeply to look for NaN (0025): both, the updates in a launcher's small bulks.
      return [inserts(2 * n), stateChanges(2 * n, 8)];
    default: {
      const m = microFor(patch, n, finds);
      return m ? [m] : [];
    }
  }
}

function microFor(patch: string, n: number, finds: number): Micro | undefined {
  switch (patch) {
    case "0001":
      return idLookups(2 * n, 30);
    case "0002":
      return projectedFinds(`first page (${n + 1}) of one workflow of ${10 * n} jobs, 3 finds`, 10 * n, 3, n + 1, { workflow: "WF3" });
    case "0009":
      // Without 0009 a page costs ~4× as much: 10 finds a round keep it short.
      return projectedFinds(`first page (${n + 1}) of one workflow of ${10 * n} jobs, 10 finds`, 10 * n, 10, n + 1, { workflow: "WF3" });
    case "0012":
      return projectedFinds(`10 finds of ${2 * n} jobs`, 2 * n, 10, 2 * n + 1, {});
    case "0013":
    case "0014":
      return projectedFinds(`${finds} finds of ${n} jobs`, n, finds, n + 1, {});
    case "0015":
      return stateChanges(2 * n);
    default:
      return undefined;
  }
}

/** The patches no conformance test needs: scripts/ferretdb/README.md's "speed only" rows. */
const SPEED_ONLY = ["0001", "0002", "0009", "0012", "0013", "0014", "0015", "0017", "0018", "0019", "0020", "0021", "0022", "0023", "0024", "0025"];

function seriesFiles(): string[] {
  return readdirSync(join(projectRoot(), "scripts", "ferretdb"))
    .filter((f) => /^0.*\.patch$/.test(f))
    .sort();
}

/** The FerretDB binary with the first `count` patches of the series (built and cached on first use). */
function prefixBinary(count: number): string {
  const r = spawnSync(join(projectRoot(), "scripts", "ferretdb", "build-prefix.sh"), [String(count)], { stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });
  if (r.status !== 0) throw new Error(`build-prefix.sh ${count} failed (exit ${r.status})`);
  return r.stdout.trim();
}

interface Side {
  label: string;
  server: MongoHandle;
  store: Store;
  dir: string;
}

async function startSide(label: string, binary: string, dbName: string): Promise<Side> {
  const dir = mkdtempSync(join(tmpdir(), "balsam-bench-ferretdb-"));
  // findMongoBinary() reads BALSAM_FERRETDB first; startMongo picks the binary before it awaits.
  const saved = process.env.BALSAM_FERRETDB;
  process.env.BALSAM_FERRETDB = binary;
  let server: MongoHandle;
  try {
    server = await startMongo({ dir: join(dir, "db"), logFile: join(dir, "ferretdb.log") });
  } finally {
    if (saved === undefined) delete process.env.BALSAM_FERRETDB;
    else process.env.BALSAM_FERRETDB = saved;
  }
  // The driver's heartbeat waits connectTimeoutMs (5 s by default) for a server that may spend
  // minutes in one count without 0010 on a loaded box: at 10⁶ jobs the heartbeat timed out and the
  // driver dropped the count's connection.
  const store = await Store.connect({ url: server.url, dbName, connectTimeoutMs: 10 * 60_000 });
  await store.ensureIndexes();
  return { label, server, store, dir };
}

async function stopSide(s: Side): Promise<void> {
  await s.store.close().catch(() => undefined);
  await s.server.stop();
  rmSync(s.dir, { recursive: true, force: true });
}

/**
 * The same `n` jobs into both servers (at once, 10,000 per insert), 10
 * workflows, states taken in turn from `states`. Returns the jobs (up to
 * 100,000 of them) and each server's CPU per inserted job, µs.
 */
async function fill(sides: readonly Side[], n: number, states: readonly Job["state"][] = ["READY"]): Promise<{ docs: Job[]; insertCpuUs: number[] }> {
  const all: Job[] = [];
  const cpu0 = sides.map((s) => cpuMsOf(s.server.pid));
  for (let i = 0; i < n; i += 10_000) {
    const docs = Array.from({ length: Math.min(10_000, n - i) }, (_, k) => ({
      ...buildJob({ name: `task${i + k}`, workflow: `WF${(i + k) % 10}`, application: "noop" }),
      state: states[(i + k) % states.length] as Job["state"],
    }));
    await Promise.all(sides.map((s) => insertJobs(s.store, docs)));
    if (n <= 100_000) all.push(...docs);
  }
  return { docs: all, insertCpuUs: sides.map((s, i) => ((cpuMsOf(s.server.pid) - (cpu0[i] ?? 0)) * 1000) / Math.max(1, n)) };
}

/** Alternating rounds (A B, B A, …) of `fn` on both sides, after one warm-up round each (unless `warmUp` is false). */
async function alternate(sides: readonly [Side, Side], rounds: number, fn: (s: Side) => Promise<Sample>, warmUp = true): Promise<[Sample[], Sample[]]> {
  if (warmUp) for (const s of sides) await fn(s);
  const out: [Sample[], Sample[]] = [[], []];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? [0, 1] : [1, 0];
    for (const i of order) out[i as 0 | 1].push(await fn(sides[i as 0 | 1]));
  }
  return out;
}

const f0 = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const range = (xs: readonly number[]) => `${f0(Math.min(...xs))}–${f0(Math.max(...xs))}`;
const overlap = (a: readonly number[], b: readonly number[]) => Math.min(...a) <= Math.max(...b) && Math.min(...b) <= Math.max(...a);

function line(name: string, unit: string, without: readonly Sample[], withP: readonly Sample[]): string {
  const cw = without.map((s) => s.cpuUs);
  const cp = withP.map((s) => s.cpuUs);
  const rw = without.map((s) => s.rtUs);
  const rp = withP.map((s) => s.rtUs);
  const noise = overlap(cw, cp) && overlap(rw, rp) ? " — within noise" : "";
  return (
    `${name}: server CPU/${unit} ${f0(median(cw))} → ${f0(median(cp))} µs (${(median(cw) / median(cp)).toFixed(2)}×), ` +
    `round trip ${f0(median(rw))} → ${f0(median(rp))} µs (rounds: CPU ${range(cw)} → ${range(cp)}, round trip ${range(rw)} → ${range(rp)})${noise}`
  );
}

async function benchPatch(files: readonly string[], file: string, rounds: number): Promise<void> {
  const number = file.slice(0, 4);
  const micros = microsFor(number);
  if (micros.length === 0) return;
  const at = files.indexOf(file) + 1;
  const without = prefixBinary(at - 1);
  const withP = prefixBinary(at);
  const name = file.replace(/\.patch$/, "");
  const sides = [await startSide(`up to ${files[at - 2]?.slice(0, 4) ?? "stock"}`, without, "bench_ferretdb"), await startSide(`up to ${number}`, withP, "bench_ferretdb")] as const;
  try {
    const jobs = Math.max(...micros.map((m) => m.jobs));
    const { docs, insertCpuUs } = jobs > 0 ? await fill(sides, jobs) : { docs: [], insertCpuUs: [] };
    if (micros.length > 1 && jobs > 0) console.log(`(${name}: ${jobs} jobs filled into both at once, insert server CPU ${f0(insertCpuUs[0] ?? NaN)} → ${f0(insertCpuUs[1] ?? NaN)} µs per job)`);
    for (const micro of micros) {
      const [a, b] = await alternate(sides, rounds, (s) => micro.round(s.store, s.server.pid, docs));
      console.log(`(${name}: ${micro.what}; without = series ${sides[0].label}, with = ${sides[1].label})`);
      console.log(line(name, micro.unit, a, b));
    }
  } finally {
    await Promise.all(sides.map(stopSide));
  }
}

/**
 * `ls --by-states` (countByState over all jobs, and over one workflow) with
 * and without 0010, on `n` jobs in 10 workflows and 5 states.
 */
async function benchCounts(files: readonly string[], n: number, rounds: number): Promise<void> {
  // No warm-up round: without 0010 a count reads every document (minutes at 10⁶), and the fill has just touched them all.
  const file = files.find((f) => f.startsWith("0010"));
  if (!file) return;
  const at = files.indexOf(file) + 1;
  const sides = [await startSide("without", prefixBinary(at - 1), "bench_ferretdb_counts"), await startSide("with", prefixBinary(at), "bench_ferretdb_counts")] as const;
  try {
    const t = performance.now();
    const { insertCpuUs } = await fill(sides, n, ["READY", "RUNNING", "JOB_FINISHED", "FAILED", "RUN_DONE"]);
    console.log(
      `(${file.replace(/\.patch$/, "")}: ls --by-states on ${n} jobs, filled into both at once in ${((performance.now() - t) / 1000).toFixed(0)} s, ` +
        `insert server CPU ${f0(insertCpuUs[0] ?? NaN)} → ${f0(insertCpuUs[1] ?? NaN)} µs per job; without = series up to ${files[at - 2]?.slice(0, 4)}, with = up to 0010)`,
    );
    for (const [what, filter] of [
      ["all jobs", {}],
      [`--wf WF3 (${Math.floor(n / 10)})`, { workflow: "WF3" }],
    ] as const) {
      const [a, b] = await alternate(sides, rounds, async (s) => {
        const cpu0 = cpuMsOf(s.server.pid);
        const ms = await timeMs(() => countByState(s.store, filter));
        return { cpuUs: (cpuMsOf(s.server.pid) - cpu0) * 1000, rtUs: ms * 1000 };
      }, false);
      const ms = (xs: readonly Sample[], k: "cpuUs" | "rtUs") => xs.map((x) => x[k] / 1000);
      console.log(
        `0010-count-group-pushdown, ls --by-states ${what}: ${f0(median(ms(a, "rtUs")))} → ${f0(median(ms(b, "rtUs")))} ms ` +
          `(${(median(ms(a, "rtUs")) / median(ms(b, "rtUs"))).toFixed(0)}×; server CPU ${f0(median(ms(a, "cpuUs")))} → ${f0(median(ms(b, "cpuUs")))} ms; rounds ${range(ms(a, "rtUs"))} → ${range(ms(b, "rtUs"))} ms)`,
      );
    }
  } finally {
    await Promise.all(sides.map(stopSide));
  }
}

export async function benchFerretdb(): Promise<void> {
  console.log(`\n## FerretDB patch series: each speed-only patch with and without it (series up to it vs up to the one before), one run`);
  if (findMongoBinary()?.kind === "mongod") {
    console.log("(skipped: mongod is on PATH, so no FerretDB build is started)");
    return;
  }
  const rounds = num("BENCH_FERRETDB_ROUNDS", 3);
  const only = process.env.BENCH_FERRETDB_PATCHES?.split(",").map((s) => s.trim());
  const files = seriesFiles();
  for (const p of SPEED_ONLY) {
    if (only && !only.includes(p)) continue;
    const file = files.find((f) => f.startsWith(p));
    if (!file) {
      console.log(`(${p}: not in the series)`);
      continue;
    }
    await benchPatch(files, file, rounds);
  }
  const countJobs = num("BENCH_FERRETDB_COUNT_JOBS", 20_000);
  if (countJobs > 0 && (!only || only.includes("0010"))) await benchCounts(files, countJobs, num("BENCH_FERRETDB_COUNT_ROUNDS", rounds));
}
