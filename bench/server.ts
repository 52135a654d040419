/**
 * The MongoDB-wire server's own costs the project leans on: an `_id $in`
 * lookup against a single `_id` lookup as the collection grows (flat when the
 * index serves it), and a bulk of conditional updates. Prints, asserts nothing.
 * Sizes: BENCH_IN_SIZES (default "20000,200000").
 */
import { buildJob, dropDatabase, insertJobs, jobsByIds, readJob, recordTransitions, renewLeases, setJobFieldsWhere, Store } from "../libs/store/index.js";
import { cpuMsOf } from "../libs/platform/proc.js";
import { num, pct } from "./measure.js";

const f2 = (x: number) => x.toFixed(2);

async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

export async function benchServer(mongoUrl: string): Promise<void> {
  const sizes = (process.env.BENCH_IN_SIZES ?? "20000,200000").split(",").map(Number).filter((n) => n > 0);
  console.log(`\n## _id $in of 50 ids vs one _id lookup, as the collection grows (${sizes.join(", ")} jobs)`);
  const store = await Store.connect({ url: mongoUrl, dbName: "bench_server" });
  try {
    await dropDatabase(store);
    await store.ensureIndexes();
    const ids: string[] = [];
    for (const size of sizes) {
      const t = performance.now();
      while (ids.length < size) {
        const docs = Array.from({ length: Math.min(10_000, size - ids.length) }, (_, k) =>
          buildJob({ name: `task${ids.length + k}`, workflow: `WF${(ids.length + k) % 10}`, application: "noop" }),
        );
        await insertJobs(store, docs);
        ids.push(...docs.map((d) => d._id));
      }
      const fillS = (performance.now() - t) / 1000;
      const pick = (n: number) => Array.from({ length: n }, () => ids[Math.floor(Math.random() * ids.length)] as string);
      const one: number[] = [];
      for (let i = 0; i < 50; i++) one.push(await timeMs(() => readJob(store, pick(1)[0] as string)));
      const many: number[] = [];
      for (let i = 0; i < 20; i++) many.push(await timeMs(() => jobsByIds(store, pick(50))));
      const cas: number[] = [];
      let renewed = 0;
      for (let i = 0; i < 5; i++) {
        const batch = [...new Set(pick(500))];
        // Leased by "bench" first, so the renewal's condition holds and every statement writes.
        await setJobFieldsWhere(store, { _id: { $in: batch } }, { lock: { owner: "bench", until: new Date() } });
        // One unordered bulk of conditional updates by _id, as a heartbeat sends them.
        cas.push(await timeMs(async () => (renewed += await renewLeases(store, "bench", batch, new Date()))));
      }
      console.log(
        `${size} jobs (filled in ${f2(fillS)} s): one _id p50 ${f2(pct(one, 50))} ms; 50-id $in p50 ${f2(pct(many, 50))} ms ` +
          `(${f2(pct(many, 50) / pct(one, 50))}× one lookup); bulk of 500 conditional updates p50 ${f2(pct(cas, 50))} ms (${f2(pct(cas, 50) / 500)} ms each; ${renewed} written)`,
      );
    }
  } finally {
    await dropDatabase(store).catch(() => undefined);
    await store.close();
  }
}

/**
 * What a launcher's state change costs the server beside an insert of the
 * same job (issue 24): N jobs inserted 500 at a time, then each moved
 * RUNNING → RUN_DONE → POSTPROCESSED → JOB_FINISHED by a conditional update,
 * 500 per unordered bulk, as the launcher's writer does. BENCH_WRITE_JOBS
 * (default 5000). Run again on BENCH_FERRETDB_BEFORE's server, it shows
 * what patch 0015 (one commit per update command) buys.
 */
export async function benchWrites(mongoUrl: string, mongoPid: number | undefined): Promise<void> {
  const n = num("BENCH_WRITE_JOBS", 5000);
  const store = await Store.connect({ url: mongoUrl, dbName: "bench_writes" });
  try {
    await dropDatabase(store);
    await store.ensureIndexes();
    const docs = Array.from({ length: n }, (_, i) => ({ ...buildJob({ name: `w${i}`, workflow: "W", application: "noop" }), state: "RUNNING" as const }));
    const measure = async (fn: () => Promise<void>) => {
      const cpu0 = cpuMsOf(mongoPid);
      const ms = await timeMs(fn);
      return { wall: (ms / n) * 1000, cpu: ((cpuMsOf(mongoPid) - cpu0) / n) * 1000 };
    };
    const ins = await measure(async () => {
      for (let i = 0; i < n; i += 500) await insertJobs(store, docs.slice(i, i + 500));
    });
    const path = [{ state: "RUN_DONE" }, { state: "POSTPROCESSED" }, { state: "JOB_FINISHED" }] as const;
    const upd = await measure(async () => {
      for (let i = 0; i < n; i += 500) {
        // The launcher writer's own operation: one unordered bulk of conditional updates.
        await recordTransitions(
          store,
          docs.slice(i, i + 500).map((d) => ({ id: d._id, from: "RUNNING" as const, path, set: { exitCode: 0 } })),
        );
      }
    });
    const cpu = mongoPid ? (x: { cpu: number }) => `, server CPU ${x.cpu.toFixed(0)} µs` : () => "";
    console.log(
      `\n## a state change vs an insert of the same job (${n} jobs, 500 per command)\n` +
        `insert: ${ins.wall.toFixed(0)} µs per job${cpu(ins)}; conditional update (3-step transition): ${upd.wall.toFixed(0)} µs per job${cpu(upd)}; ` +
        `update/insert ${f2(upd.wall / ins.wall)}× wall${mongoPid ? `, ${f2(upd.cpu / ins.cpu)}× server CPU` : ""}`,
    );
  } finally {
    await dropDatabase(store).catch(() => undefined);
    await store.close();
  }
}
