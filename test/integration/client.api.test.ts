import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { quote } from "shell-quote";
import { useCliFixture } from "../support/fixture.js";
import { startLauncher } from "../support/launcher.js";
import { connect, ConfigError, UsageError, CHUNK_SIZE, ResultWatcher, type FinishedJob, type Job } from "../../libs/client/index.js";
import { RECHECK_DUTY, recheckDelayMs } from "../../libs/client/results.js";
import { coll, COLLECTIONS } from "../../libs/store/collections.js";
import type { Store } from "../../libs/store/index.js";

const f = useCliFixture("client");
const { ctx, script } = f;

const CLIENT_URL = pathToFileURL(resolve(fileURLToPath(import.meta.url), "../../../libs/client/index.js")).href;

function launcher(wf: string) {
  return startLauncher(["--wf-filter", wf, "--job-mode", "serial"], { ...f.db.env, BALSAM_NODELIST: "node1" });
}

function finishedAt(j: Job): number {
  const h = j.stateHistory.find((x) => x.state === "JOB_FINISHED");
  assert.ok(h, `${j.name} has no JOB_FINISHED in its history`);
  return h.at.getTime();
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

describe("client API against the real servers", () => {
  before(async () => {
    await f.balsam.apps.add({ name: "echo", executable: script("echo.sh", 'echo "DH-OUTPUT: $1"') });
  });

  test("addMany adds 10,000 evaluations in growing parts, each part's queue entries in Redis while a later part is inserted", async () => {
    // A database of its own: 10k extra documents would make every unindexed
    // query of the later tests a 10k-document scan on FerretDB (minutes, not ms).
    const bulk = await connect({ mongoUrl: ctx.mongoUrl, redisUrl: ctx.redisUrl, dbName: `${ctx.dbName}_bulk`, queuePrefix: `${ctx.prefix}:bulk` });
    try {
      await bulk.apps.add({ name: "echo", executable: "/bin/echo" });
      const n = 10_000;
      const jobs = coll(bulk.store).jobs;
      const insertMany = jobs.insertMany.bind(jobs);
      const parts: number[] = [];
      // Entries waiting in Redis as each insert begins: launchers can start on them.
      const queuedAtInsert: Array<Promise<number>> = [];
      jobs.insertMany = ((d: Parameters<typeof insertMany>[0], o?: Parameters<typeof insertMany>[1]) => {
        parts.push(d.length);
        queuedAtInsert.push(bulk.queues.pending("BULK"));
        return insertMany(d, o);
      }) as typeof jobs.insertMany;
      const t = performance.now();
      let added: Job[];
      try {
        added = await bulk.jobs.addMany(Array.from({ length: n }, (_, i) => ({ name: `task${i}`, workflow: "BULK", application: "echo", args: `'{"e0": ${(i % 21) - 10}}'` })));
      } finally {
        jobs.insertMany = insertMany;
      }
      const secs = (performance.now() - t) / 1000;
      console.log(`addMany: ${n} jobs in ${secs.toFixed(2)} s (${Math.round(n / secs)} jobs/s)`);
      assert.deepEqual(parts, [250, 500, 1000, 2000, 2000, 2000, 2000, 250], "parts doubling from 250 up to 2,000");
      const queued = await Promise.all(queuedAtInsert);
      assert.equal(queued[0], 0);
      // Each part's jobs go in chunks of CHUNK_SIZE, an entry per chunk.
      const entries = parts.map((p) => Math.ceil(p / CHUNK_SIZE));
      // Part k's insert begins once part k-2's entries are in (part k-1's may be on their way).
      for (let k = 2; k < parts.length; k++) assert.ok(queued[k]! >= entries.slice(0, k - 1).reduce((a, b) => a + b, 0), `entries of parts 1..${k - 1} queued before insert ${k + 1}: ${queued.join(", ")}`);
      assert.equal(added.length, n);
      assert.equal(new Set(added.map((j) => j._id)).size, n);
      assert.ok(added.every((j) => j.state === "READY"));
      assert.equal(await bulk.jobs.filter({ workflow: "BULK" }).count(), n, "counted back from the server");
      const chunks = new Map<string, number>();
      for (const j of added) chunks.set(j.chunk ?? "", (chunks.get(j.chunk ?? "") ?? 0) + 1);
      assert.ok(!chunks.has(""), "every job of a part of 250 or more is in a chunk");
      assert.ok([...chunks.values()].every((c) => c >= 2 && c <= CHUNK_SIZE), "chunks of 2 to CHUNK_SIZE jobs");
      assert.equal(await bulk.queues.pending("BULK"), chunks.size, "every chunk has its queue entry");
      assert.equal(chunks.size, entries.reduce((a, b) => a + b, 0));
    } finally {
      await bulk.queues.obliterate("BULK").catch(() => undefined);
      await coll(bulk.store).db.dropDatabase().catch(() => undefined);
      await bulk.close();
    }
  });

  test("results are pushed as jobs finish: each once, with its result, long before a MongoDB recheck", async () => {
    // No recheck at all: whatever arrives after add() came through Redis.
    const w = await f.balsam.watch({ recheckMs: 1e12 });
    const jobs = await f.balsam.jobs.addMany(Array.from({ length: 20 }, (_, i) => ({ name: `task${i}`, workflow: "PUSH", application: "echo", args: String(i), nodePackingCount: 4 })));
    await w.add(jobs.map((j) => j._id));
    assert.equal(w.pending, 20);
    const l = launcher("PUSH");
    const got: Array<{ r: FinishedJob; at: number }> = [];
    try {
      while (w.pending > 0) {
        const r = await w.next({ timeoutMs: 120_000 });
        assert.ok(r, `only ${got.length} of 20 results arrived within 120 s:\n${l.output()}`);
        got.push({ r, at: Date.now() });
      }
    } finally {
      await w.close();
    }
    assert.equal(await l.exited, 0, l.output());
    assert.equal(new Set(got.map((g) => g.r.id)).size, 20, "each job arrives once");
    const byId = new Map(jobs.map((j) => [j._id, j]));
    const lat: number[] = [];
    for (const { r, at } of got) {
      const j = await f.balsam.jobs.get(r.id);
      assert.equal(r.state, "JOB_FINISHED");
      assert.equal(r.result, Number(byId.get(r.id)!.args), `${r.name}'s result`);
      assert.equal(r.name, j.name);
      lat.push(at - finishedAt(j));
    }
    console.log(`push delivery after JOB_FINISHED was recorded: p50 ${pct(lat, 50)} ms, max ${Math.max(...lat)} ms`);
    // The default safety-net recheck runs every 5000 ms; these came well before any would have.
    assert.ok(Math.max(...lat) < 5000, `latencies ${lat.join(", ")} ms`);
  });

  test("f.balsam.results(ids) yields each finished job once, as it finishes", async () => {
    const jobs = await f.balsam.jobs.addMany(Array.from({ length: 12 }, (_, i) => ({ name: `task${i}`, workflow: "ITER", application: "echo", args: String(100 + i), nodePackingCount: 4 })));
    const ids = jobs.map((j) => j._id);
    const l = launcher("ITER");
    const got: FinishedJob[] = [];
    for await (const r of f.balsam.results(ids, { timeoutMs: 120_000, recheckMs: 1e12 })) got.push(r);
    assert.equal(await l.exited, 0, l.output());
    assert.equal(got.length, 12, l.output());
    assert.deepEqual(new Set(got.map((g) => g.id)), new Set(ids));
    for (const r of got) assert.equal(r.result, Number(jobs.find((j) => j._id === r.id)!.args));
    // Everything is final now: wait() answers from MongoDB at once.
    const all = await f.balsam.wait(ids, { timeoutMs: 30_000 });
    assert.equal(all.length, 12);
  });

  test("a watcher delivers jobs that finished before add(): heard ones from its buffer, older ones from MongoDB", async () => {
    const [old] = await f.balsam.jobs.addMany([{ name: "old", workflow: "OLD", application: "echo", args: "1" }]);
    const l1 = launcher("OLD");
    assert.equal(await l1.exited, 0, l1.output());
    const w = await f.balsam.watch({ recheckMs: 1e12 });
    try {
      const [late] = await f.balsam.jobs.addMany([{ name: "late", workflow: "LATE", application: "echo", args: "2" }]);
      const l2 = launcher("LATE");
      assert.equal(await l2.exited, 0, l2.output());
      // Finished while not yet watched, and MongoDB is not read: the announcement was kept.
      await w.add([late!._id], { checkStore: false });
      assert.deepEqual(await w.next({ timeoutMs: 0 }), { id: late!._id, name: "late", workflow: "LATE", state: "JOB_FINISHED", result: 2 });
      // Finished before the watcher existed: found in MongoDB by add().
      await w.add([old!._id]);
      const r = await w.next({ timeoutMs: 0 });
      assert.equal(r?.id, old!._id);
      assert.equal(r?.result, 1);
      assert.equal(w.pending, 0);
      assert.equal(await w.next(), undefined, "nothing pending: next() returns at once");
    } finally {
      await w.close();
      await w.close();
    }
    await assert.rejects(w.add(["x"]), /closed/);
  });

  test("an announcement lost while the subscription's connection was down is found once it is back, not at the next periodic recheck", async () => {
    // No periodic recheck: only the one the reconnect asks for can find it.
    const w = await f.balsam.watch({ recheckMs: 1e12 });
    try {
      const [job] = await f.balsam.jobs.addMany([{ name: "unheard", workflow: "UNHEARD", application: "echo", args: "3" }]);
      await w.add([job!._id]);
      assert.equal(await w.next({ timeoutMs: 0 }), undefined, "not final yet");
      // Final in MongoDB and never announced: what a launcher lost between its write and its announcement leaves.
      await coll(f.balsam.store).jobs.updateOne({ _id: job!._id }, { $set: { state: "JOB_FINISHED", data: { result: 3 } } });
      assert.equal(await w.next({ timeoutMs: 300 }), undefined, "nothing announces it");
      // The subscription's connection drops, as in a network fault; ioredis connects and subscribes anew.
      (f.balsam.queues as unknown as { subscriber: { stream: { destroy(): void } } }).subscriber.stream.destroy();
      const r = await w.next({ timeoutMs: 30_000 });
      assert.equal(r?.id, job!._id, "found in MongoDB once the subscription was back");
      assert.equal(r?.result, 3);
    } finally {
      await w.close();
      await f.balsam.queues.obliterate("UNHEARD").catch(() => undefined);
    }
  });

  test("a recheck that fails is tried again by the next next(), not given up", async () => {
    const [job] = await f.balsam.jobs.addMany([{ name: "reread", workflow: "REREAD", application: "echo", args: "4" }]);
    // The client's store, its jobs' first find failing as a MongoDB away would.
    const real = coll(f.balsam.store);
    const jobs = Object.create(real.jobs) as typeof real.jobs;
    let finds = 0;
    jobs.find = ((...a: Parameters<typeof real.jobs.find>) => {
      if (++finds === 1) throw new Error("MongoDB away");
      return real.jobs.find(...a);
    }) as typeof real.jobs.find;
    const store = { [COLLECTIONS]: { ...real, jobs } } as unknown as Store;
    const w = await ResultWatcher.open(store, f.balsam.queues, { recheckMs: 1 });
    try {
      await w.add([job!._id], { checkStore: false });
      // Final and never announced: only a recheck finds it.
      await coll(f.balsam.store).jobs.updateOne({ _id: job!._id }, { $set: { state: "JOB_FINISHED", data: { result: 4 } } });
      await assert.rejects(w.next({ timeoutMs: 30_000 }), /MongoDB away/);
      const r = await w.next({ timeoutMs: 30_000 });
      assert.equal(r?.id, job!._id, "the next next() rechecked");
      assert.equal(finds, 2);
    } finally {
      await w.close();
      await f.balsam.queues.obliterate("REREAD").catch(() => undefined);
    }
  });

  test("rechecks are spaced by what they cost: at least recheckMs apart, and RECHECK_DUTY times as long as the last one took", () => {
    assert.equal(recheckDelayMs(5000, 10), 5000, "a cheap recheck: every recheckMs");
    assert.equal(recheckDelayMs(5000, 1500), 1500 * RECHECK_DUTY, "100,000 pending jobs (1.5 s to read here): far apart");
    assert.ok(RECHECK_DUTY >= 20, "a recheck takes at most 5% of the time");
  });

  test("wait() rejects after timeoutMs when a job does not finish", async () => {
    const j = await f.balsam.jobs.add({ name: "never", workflow: "NOLAUNCHER", application: "echo" });
    await assert.rejects(f.balsam.wait([j._id], { timeoutMs: 300 }), /timed out after 300 ms: 1 of 1 jobs not finished/);
    await f.balsam.jobs.filter({ workflow: "NOLAUNCHER" }).delete();
  });

  test("a NaN in a job is refused with where it is, and changes nothing: add, modify and filter().update()", async () => {
    const nan = (path: string) => (e: unknown) => e instanceof UsageError && e.message === `${path} is NaN, which a job cannot hold; use null or the string "NaN"`;
    // The embedded server drops the connection of a command holding a NaN: this said "connection … closed".
    await assert.rejects(f.balsam.jobs.addMany([{ name: "ok", workflow: "NAN", application: "echo" }, { name: "bad", workflow: "NAN", application: "echo", data: { loss: { runs: [0.5, NaN] } } }]), nan("data.loss.runs[1]"));
    assert.equal((await f.balsam.jobs.filter({ workflow: "NAN" }).list()).length, 0);
    assert.equal(await f.balsam.queues.pending("NAN"), 0);
    const j = await f.balsam.jobs.add({ name: "kept", workflow: "NAN", application: "echo", data: { loss: 0.5 } });
    await assert.rejects(f.balsam.jobs.modify(j._id, { data: { loss: NaN } }), nan("data.loss"));
    await assert.rejects(f.balsam.jobs.filter({ workflow: "NAN" }).update({ "data.loss": NaN } as never), nan("data.loss"));
    // Nothing written, and the client's connection still answers.
    assert.deepEqual((await f.balsam.jobs.get(j._id)).data, { loss: 0.5 });
    await f.balsam.jobs.modify(j._id, { data: { loss: null } });
    assert.deepEqual((await f.balsam.jobs.get(j._id)).data, { loss: null });
    await f.balsam.jobs.filter({ workflow: "NAN" }).delete();
  });

  test("the seed's Django filter-delete: name contains 'task' within workflow TEST only", async () => {
    await f.balsam.jobs.addMany([
      { name: "test", workflow: "TEST", application: "echo" },
      { name: "task92", workflow: "TEST", application: "echo" },
      { name: "task93", workflow: "TEST", application: "echo" },
      { name: "task92", workflow: "OTHER", application: "echo" },
      { name: "task_7", workflow: "OTHER", application: "echo" },
    ]);
    const deleted = await f.balsam.jobs.filter({ name: "task", workflow: "TEST" }).delete();
    assert.equal(deleted, 2);
    assert.deepEqual((await f.balsam.jobs.filter({ workflow: "TEST" }).list()).map((j) => j.name), ["test"]);
    assert.deepEqual((await f.balsam.jobs.filter({ workflow: "OTHER" }).list()).map((j) => j.name).sort(), ["task92", "task_7"]);
    // The deleted jobs' queue entries went with them; the survivor's stayed.
    assert.equal(await f.balsam.queues.pending("TEST"), 1);
    assert.throws(() => f.balsam.jobs.filter({ state: "NOPE" as never }), /unknown state 'NOPE'/);
    await assert.rejects(f.balsam.jobs.filter({}).delete(), /empty filter/);
    await f.balsam.jobs.filter({ workflow: "TEST" }).delete();
    await f.balsam.jobs.filter({ workflow: "OTHER" }).delete();
  });

  test("a running job finds itself with currentJob() and adds a child with spawnChild()", async () => {
    const spawner = join(f.dir, "spawner.mjs");
    writeFileSync(
      spawner,
      `import { connect } from ${JSON.stringify(CLIENT_URL)};
const b = await connect();
try {
  const me = await b.currentJob();
  const child = await b.spawnChild({ name: me.name + "-child", application: "echo", args: "7" });
  console.log("BALSAM-RESULT: " + JSON.stringify({ me: me._id, state: me.state, workflow: me.workflow, child: child._id, childState: child.state }));
} finally {
  await b.close();
}
`,
    );
    await f.balsam.apps.add({ name: "spawner", executable: quote([process.execPath, spawner]) });
    const parent = await f.balsam.jobs.add({ name: "parent", workflow: "SPAWN", application: "spawner" });
    const l = launcher("SPAWN");
    // The launcher stays while the child can still be released and run.
    assert.equal(await l.exited, 0, l.output());
    const p = await f.balsam.jobs.get(parent._id);
    assert.equal(p.state, "JOB_FINISHED", JSON.stringify(p.stateHistory));
    const seen = p.data.result as { me: string; state: string; workflow: string; child: string; childState: string };
    assert.equal(seen.me, parent._id);
    assert.equal(seen.state, "RUNNING");
    assert.equal(seen.workflow, "SPAWN");
    assert.equal(seen.childState, "AWAITING_PARENTS", "a child waits for its running parent");
    const kids = await f.balsam.jobs.children(parent._id);
    assert.equal(kids.length, 1);
    const kid = kids[0]!;
    assert.equal(kid._id, seen.child);
    assert.equal(kid.name, "parent-child");
    assert.equal(kid.workflow, "SPAWN");
    assert.deepEqual(kid.parents, [parent._id]);
    assert.equal(kid.state, "JOB_FINISHED", JSON.stringify(kid.stateHistory));
    assert.equal(kid.data.result, 7);
    assert.ok(finishedAt(kid) >= finishedAt(p), "the child ran after its parent finished");
    await assert.rejects(f.balsam.currentJob({}), (e: unknown) => e instanceof ConfigError && /BALSAM_JOB_ID is not set/.test(e.message));
  });
});
