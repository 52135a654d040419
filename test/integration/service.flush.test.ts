import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../support/context.js";
import { BALSAM_BIN } from "../support/cli.js";
import { startLauncher } from "../support/launcher.js";
import { lsQueuesJson, updateSettings } from "../support/schedulers.js";
import { coll } from "../../libs/store/collections.js";
import { useCliFixture } from "../support/fixture.js";

const f = useCliFixture("flush");
const { ctx } = f;

/** Deletes this test's Redis keys only: the test servers are shared with other files running in parallel. */
async function flushOurKeys(): Promise<number> {
  let cursor = "0";
  let n = 0;
  do {
    const [next, keys] = await ctx.queues.connection.scan(cursor, "MATCH", `${ctx.prefix}:*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) n += await ctx.queues.connection.del(...keys);
  } while (cursor !== "0");
  return n;
}

interface ServiceProc {
  child: ChildProcess;
  output(): string;
  exited: Promise<number>;
}

function startService(args: string[]): ServiceProc {
  const child = spawn(process.execPath, [BALSAM_BIN, "service", ...args], { env: { ...process.env, ...f.db.env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number>((r) => child.on("close", (code, sig) => r(code ?? (sig ? 128 : 1))));
  return { child, output: () => out, exited };
}

async function states(wf: string): Promise<string[]> {
  return (await f.balsam.jobs.filter({ workflow: wf }).list()).map((j) => j.state);
}

describe("balsam service heals a flushed Redis", () => {
  before(async () => {
    await f.balsam.apps.add({ name: "echo", executable: "/bin/echo" });
  });

  test("service --once puts every runnable job back in its queue; a launcher then finishes them", async () => {
    updateSettings(f.db.dir, (s) => ({ ...s, scheduler: "local", service: { ...s.service, autoSubmit: false } }));
    const parent = await f.balsam.jobs.add({ name: "parent", workflow: "FLUSH", application: "echo" });
    await f.balsam.jobs.addMany(Array.from({ length: 40 }, (_, i) => ({ name: `task${i}`, workflow: "FLUSH", application: "echo", args: String(i), nodePackingCount: 8 })));
    const child = await f.balsam.jobs.add({ name: "child", workflow: "FLUSH", application: "echo", parents: [parent._id] });
    // The 40 tasks were added together: 5 chunks of 8, an entry each (libs/client/add.ts).
    assert.equal(await ctx.queues.pending("FLUSH"), 6);
    // A launcher that died between recording the parent finished and releasing its child.
    await coll(ctx.store).jobs.updateOne({ _id: parent._id }, { $set: { state: "JOB_FINISHED" } });

    assert.ok((await flushOurKeys()) > 0);
    assert.equal(await ctx.queues.pending("FLUSH"), 0, "the queue is gone");

    const once = await f.db.run(["service", "--once"]);
    assert.equal(once.code, 0, once.stderr);
    assert.equal((await f.balsam.jobs.get(child._id)).state, "READY", "the child is released");
    assert.equal(await ctx.queues.pending("FLUSH"), 6, "every runnable job is back: 40 tasks in their 5 chunks, and the child");
    const log = readFileSync(join(f.db.dir, "log", "service.log"), "utf8");
    assert.match(log, /released 1 child job\(s\) of 1 finished parent\(s\)/);
    assert.match(log, /workflow FLUSH: 41 runnable job\(s\) but 1 offered by 1 queue entries: offered 41 again/);
    assert.match(log, /policy: no auto-submission/);
    assert.equal(await coll(ctx.store).queuedLaunches.countDocuments(), 0);

    const l = startLauncher(["--wf-filter", "FLUSH", "--job-mode", "serial"], { ...f.db.env, BALSAM_NODELIST: "node1" });
    assert.equal(await l.exited, 0, l.output());
    assert.deepEqual(new Set(await states("FLUSH")), new Set(["JOB_FINISHED"]));
    assert.equal((await f.balsam.jobs.get(child._id)).state, "JOB_FINISHED");
  });

  test("the service loop: a flushed queue is run by a launcher the service starts itself (local scheduler)", async () => {
    updateSettings(f.db.dir, (s) => ({
      ...s,
      scheduler: "local",
      service: { ...s.service, autoSubmit: true, queue: "local", maxQueuedLaunches: 1, maxNodes: 1, wallTimeMinutes: 10, wfFilter: ["LOOP"], intervalSeconds: 1 },
    }));
    const parent = await f.balsam.jobs.add({ name: "parent", workflow: "LOOP", application: "echo" });
    await f.balsam.jobs.addMany(Array.from({ length: 20 }, (_, i) => ({ name: `task${i}`, workflow: "LOOP", application: "echo", args: String(i), nodePackingCount: 4 })));
    const child = await f.balsam.jobs.add({ name: "child", workflow: "LOOP", application: "echo", parents: [parent._id] });
    await flushOurKeys();

    const svc = startService(["--interval-seconds", "1"]);
    try {
      await waitFor(async () => (await states("LOOP")).every((s) => s === "JOB_FINISHED"), 120_000, "LOOP jobs to finish");
      assert.equal((await f.balsam.jobs.get(child._id)).state, "JOB_FINISHED");

      // A second service on the same database refuses, naming the first.
      const second = await f.db.run(["service", "--once"]);
      assert.equal(second.code, 1);
      assert.match(second.stderr, new RegExp(`another balsam service is running for this database: pid ${svc.child.pid} on host `));

      const launches = await coll(ctx.store).queuedLaunches.find({ submittedBy: "service" }).toArray();
      assert.equal(launches.length, 1, svc.output());
      assert.deepEqual([launches[0]!.scheduler, launches[0]!.nodes, launches[0]!.wfFilter], ["local", 1, ["LOOP"]]);
      await waitFor(async () => (await lsQueuesJson(f.db)).find((r) => r.id === launches[0]!._id)?.state === "finished", 60_000, "the local launch to end");
    } finally {
      svc.child.kill("SIGTERM");
    }
    assert.equal(await svc.exited, 0, svc.output());
    assert.match(svc.output(), /stopping: received SIGTERM/);
    assert.equal(await coll(ctx.store).db.collection("serviceLock").countDocuments(), 0, "the lock is released");
    const log = readFileSync(join(f.db.dir, "log", "service.log"), "utf8");
    assert.match(log, /decision: \d+ runnable job\(s\) need \d+ node\(s\), 0 already queued: submitting 1 node\(s\) for 10 min/);
    assert.match(log, /submitted launch \S+: local id \d+/);
  });
});
