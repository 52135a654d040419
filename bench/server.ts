/**
 * The MongoDB-wire server's own costs the project leans on: an `_id $in`
 * lookup against a single `_id` lookup as the collection grows (flat when the
 * index serves it), and a bulk of conditional updates. Prints, asserts nothing.
 * Sizes: BENCH_IN_SIZES (default "20000,200000").
 */
import { buildJob, dropDatabase, insertJobs, jobsByIds, readJob, renewLeases, Store } from "../libs/store/index.js";
import { pct } from "./measure.js";

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
      for (let i = 0; i < 5; i++) {
        const batch = pick(500);
        // One unordered bulk of conditional updates by _id, as a heartbeat sends them.
        cas.push(await timeMs(() => renewLeases(store, "bench", batch, new Date())));
      }
      console.log(
        `${size} jobs (filled in ${f2(fillS)} s): one _id p50 ${f2(pct(one, 50))} ms; 50-id $in p50 ${f2(pct(many, 50))} ms ` +
          `(${f2(pct(many, 50) / pct(one, 50))}× one lookup); bulk of 500 conditional updates p50 ${f2(pct(cas, 50))} ms (${f2(pct(cas, 50) / 500)} ms each)`,
      );
    }
  } finally {
    await dropDatabase(store).catch(() => undefined);
    await store.close();
  }
}
