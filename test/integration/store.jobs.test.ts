import { before, test, describe } from "node:test";
import assert from "node:assert/strict";
import { useTestContext } from "../support/context.js";
import { JobsApi } from "../../libs/client/jobs.js";
import { createApp, transitionJob, getJob, findJobs, findPage, countByState, recordTransitions, UpdateRefusedError, type Transition } from "../../libs/store/index.js";
import { AmbiguousIdError, NotFoundError, UsageError } from "../../libs/errors/index.js";
import type { JobSpec } from "../../libs/models/index.js";
import { coll } from "../../libs/store/collections.js";

const ctx = useTestContext("store");

describe("jobs in MongoDB", () => {
  let jobs: JobsApi;

  // Every test below adds jobs of this app.
  before(async () => {
    jobs = new JobsApi(ctx.store, ctx.queues);
    await createApp(ctx.store, { name: "sim", executable: "/bin/true" });
  });

  test("10k jobs inserted in bulk and filtered", async () => {
    const specs: JobSpec[] = [];
    for (let i = 0; i < 10_000; i++) specs.push({ name: `task${i}`, workflow: i % 2 ? "BIG_A" : "BIG_B", application: "sim" });
    const added = await jobs.addMany(specs);
    assert.equal(added.length, 10_000);
    assert.equal(await jobs.filter({ workflow: "BIG_A" }).count(), 5000);
    assert.equal(await jobs.filter({ workflow: "BIG_A", name: "task99" }).count(), 56); // odd i only: task99, five task99x, fifty task99xx
    const byState = await countByState(ctx.store, { workflow: "BIG_B" });
    assert.deepEqual(byState, { READY: 5000 });
    // An entry per chunk of jobs added together (each part written, per workflow).
    const entries = new Set(added.filter((j) => j.workflow === "BIG_A").map((j) => j.chunk ?? j._id)).size;
    assert.ok(entries < 5000 / 7, `${entries} entries`);
    assert.equal(await ctx.queues.pending("BIG_A"), entries);
  });

  test("a bounded read is one find command; a page cut into batches is continued with getMore", async () => {
    const count = (name: string) => ctx.store.commands.get(name) ?? 0;
    let [finds, getMores] = [count("find"), count("getMore")];
    const page = await findJobs(ctx.store, { workflow: "BIG_A" }, { limit: 1000, projection: { _id: 1, name: 1 } });
    assert.deepEqual([page.length, new Set(page.map((j) => j._id)).size, count("find") - finds, count("getMore") - getMores], [1000, 1000, 1, 0]);
    assert.deepEqual(Object.keys(page[0] ?? {}).sort(), ["_id", "name"]);

    [finds, getMores] = [count("find"), count("getMore")];
    const batched = await findPage(ctx.store, "jobs", { workflow: "BIG_A" }, { limit: 1000, batchSize: 300, projection: { _id: 1, workflow: 1 } });
    assert.equal(batched.length, 1000);
    assert.equal(new Set(batched.map((j) => j._id)).size, 1000, "no job twice across batches");
    assert.ok(batched.every((j) => j.workflow === "BIG_A"));
    assert.deepEqual([count("find") - finds, count("getMore") - getMores], [1, 3], "300 + 300 + 300 + 100");
    // The same jobs, in the same order, as one batch.
    const whole = await findPage(ctx.store, "jobs", { workflow: "BIG_A" }, { limit: 1000, projection: { _id: 1, workflow: 1 } });
    assert.deepEqual(batched.map((j) => j._id), whole.map((j) => j._id));
    await assert.rejects(findPage(ctx.store, "jobs", {}, { limit: 0 }), RangeError);
  });

  test("removing 'task' jobs within workflow TEST leaves other workflows' task jobs alone", async () => {
    await jobs.addMany([
      { name: "task1", workflow: "TEST", application: "sim" },
      { name: "task2", workflow: "TEST", application: "sim" },
      { name: "test", workflow: "TEST", application: "sim" },
      { name: "task1", workflow: "OTHER", application: "sim" },
    ]);
    // The seed's Django one-liner, in one line.
    const n = await jobs.filter({ name: "task", workflow: "TEST" }).delete();
    assert.equal(n, 2);
    assert.deepEqual((await jobs.filter({ workflow: "TEST" }).list()).map((j) => j.name), ["test"]);
    assert.equal(await jobs.filter({ workflow: "OTHER", name: "task" }).count(), 1);
    // Their queue entries went too: only `test` is left in TEST's queue.
    assert.equal(await ctx.queues.pending("TEST"), 1);
  });

  test("name filter is a literal substring, not a regex", async () => {
    await jobs.add({ name: "weird.*name", workflow: "LIT", application: "sim" });
    await jobs.add({ name: "plain", workflow: "LIT", application: "sim" });
    assert.deepEqual((await jobs.filter({ workflow: "LIT", name: ".*" }).list()).map((j) => j.name), ["weird.*name"]);
  });

  test("unique and ambiguous id prefixes", async () => {
    const a = await jobs.add({ _id: "abcdef01-0000-4000-8000-000000000001", name: "p1", workflow: "PFX", application: "sim" });
    await jobs.add({ _id: "abcdef02-0000-4000-8000-000000000002", name: "p2", workflow: "PFX", application: "sim" });
    assert.equal((await getJob(ctx.store, "abcdef01")).name, "p1");
    assert.equal((await getJob(ctx.store, a._id)).name, "p1");
    await assert.rejects(getJob(ctx.store, "abcdef0"), (e: unknown) => e instanceof AmbiguousIdError && e.candidates.length === 2);
    await assert.rejects(getJob(ctx.store, "ffffffff"), NotFoundError);
  });

  test("a compare-and-set transition that loses the race does not overwrite", async () => {
    const j = await jobs.add({ name: "cas", workflow: "CAS", application: "sim" });
    const won = await transitionJob(ctx.store, { id: j._id, from: "READY", path: [{ state: "STAGED_IN", message: "A" }], set: { lock: { owner: "A", until: new Date(Date.now() + 60_000) } } });
    const lost = await transitionJob(ctx.store, { id: j._id, from: "READY", path: [{ state: "STAGED_IN", message: "B" }], set: { lock: { owner: "B", until: new Date(Date.now() + 60_000) } } });
    assert.equal(won, true);
    assert.equal(lost, false);
    const after = await getJob(ctx.store, j._id);
    assert.equal(after.lock?.owner, "A");
    assert.deepEqual(after.stateHistory.map((h) => h.state), ["CREATED", "READY", "STAGED_IN"]);
    // Owner-conditioned: B cannot move A's job on.
    assert.equal(await transitionJob(ctx.store, { id: j._id, from: "STAGED_IN", owner: "B", path: [{ state: "PREPROCESSED" }] }), false);
    // Fast-forward: several states in one write, all in the history.
    assert.equal(await transitionJob(ctx.store, { id: j._id, from: "STAGED_IN", owner: "A", path: [{ state: "PREPROCESSED" }, { state: "RUNNING" }] }), true);
    const ran = await getJob(ctx.store, j._id);
    assert.equal(ran.state, "RUNNING");
    assert.deepEqual(ran.stateHistory.slice(-2).map((h) => h.state), ["PREPROCESSED", "RUNNING"]);
  });

  test("a bulk sent again with the same token and time reads back as written; a rival's write still reads as lost", async () => {
    const [a, b] = await jobs.addMany([
      { name: "again1", workflow: "AGAIN", application: "sim" },
      { name: "again2", workflow: "AGAIN", application: "sim" },
    ]);
    const ts: Transition[] = [a!, b!].map((j) => ({ id: j._id, from: "READY", path: [{ state: "STAGED_IN" }, { state: "PREPROCESSED" }, { state: "RUNNING" }], set: { lock: { owner: "A", until: new Date(Date.now() + 60_000) } } }));
    const at = new Date();
    assert.deepEqual(await recordTransitions(ctx.store, ts, at, "tok-1"), []);
    // As after an answer lost on the way back: the statements no longer match, the token says they were ours.
    const updates = ctx.store.commands.get("update") ?? 0;
    assert.deepEqual(await recordTransitions(ctx.store, ts, at, "tok-1"), []);
    assert.equal((ctx.store.commands.get("update") ?? 0) - updates, 1, "one update command for the bulk");
    // Another write's token: lost races, both.
    assert.deepEqual((await recordTransitions(ctx.store, ts, at, "tok-2")).sort(), [a!._id, b!._id].sort());
    assert.deepEqual((await getJob(ctx.store, a!._id)).stateHistory.map((h) => h.state), ["CREATED", "READY", "STAGED_IN", "PREPROCESSED", "RUNNING"]);
  });

  test("a statement the server refuses throws with the server's code, after the bulk's others were applied", async () => {
    const [ok, bad] = await jobs.addMany([
      { name: "fine", workflow: "REFUSED", application: "sim" },
      { name: "refused", workflow: "REFUSED", application: "sim" },
    ]);
    // `$inc` of a string field: refused by MongoDB and FerretDB alike (TypeMismatch, code 14).
    const err = await recordTransitions(ctx.store, [
      { id: ok!._id, from: "READY", path: [{ state: "STAGED_IN" }] },
      { id: bad!._id, from: "READY", path: [{ state: "STAGED_IN" }], inc: { name: 1 } as never },
    ]).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof UpdateRefusedError, `threw ${String(err)}`);
    assert.equal(err.code, 14);
    assert.equal((await getJob(ctx.store, ok!._id)).state, "STAGED_IN");
    assert.equal((await getJob(ctx.store, bad!._id)).state, "READY");
  });

  test("enqueueing the same job twice yields one BullMQ job", async () => {
    const j = await jobs.add({ name: "once", workflow: "ONCE", application: "sim" });
    await ctx.queues.enqueue([{ id: j._id, workflow: "ONCE", attempts: 0 }]);
    await ctx.queues.enqueue([{ id: j._id, workflow: "ONCE", attempts: 0 }]);
    assert.equal(await ctx.queues.pending("ONCE"), 1);
    assert.ok((await ctx.queues.workflows()).includes("ONCE"));
  });

  test("a bad workflow name gives a clear error and changes nothing", async () => {
    const before = await coll(ctx.store).jobs.countDocuments();
    await assert.rejects(jobs.addMany([{ name: "ok", workflow: "GOOD", application: "sim" }, { name: "x", workflow: "bad:name", application: "sim" }]), (e: unknown) => e instanceof UsageError && /letters, digits/.test(e.hint ?? ""));
    assert.equal(await coll(ctx.store).jobs.countDocuments(), before);
    await assert.rejects(jobs.add({ name: "x", workflow: "W", application: "nope" }), /no app named 'nope'/);
    assert.equal(await coll(ctx.store).jobs.countDocuments(), before);
  });

  test("children and dependency cycles", async () => {
    const p = await jobs.add({ name: "parent", workflow: "DEP", application: "sim" });
    const c = await jobs.add({ name: "child", workflow: "DEP", application: "sim" });
    const { child } = await jobs.addDependency(p._id, c._id);
    assert.equal(child.state, "AWAITING_PARENTS");
    assert.equal(await ctx.queues.pending("DEP"), 1); // the child's entry was removed
    await assert.rejects(jobs.addDependency(c._id, p._id), /cycle/);
    await assert.rejects(jobs.addDependency(p._id, c._id), /already depends/);
    assert.deepEqual((await findJobs(ctx.store, { parent: p._id })).map((j) => j.name), ["child"]);
  });

  test("setParents replaces the parents; a job not started waits or is queued as they say, its queue entry following", async () => {
    const wf = "SETP";
    const done = await jobs.add({ name: "done", workflow: "SETP_DONE", application: "sim" });
    await transitionJob(ctx.store, { id: done._id, from: "READY", path: ["STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED"].map((s) => ({ state: s as never })) });
    const open = await jobs.add({ name: "open", workflow: "SETP_OPEN", application: "sim" });
    const child = await jobs.add({ name: "child", workflow: wf, application: "sim" });
    assert.equal(await ctx.queues.pending(wf), 1);
    const waiting = await jobs.setParents(child._id, [open._id.slice(0, 13)]);
    assert.deepEqual([waiting.state, waiting.parents, await ctx.queues.pending(wf)], ["AWAITING_PARENTS", [open._id], 0]);
    assert.equal((await jobs.get(open._id)).hasChildren, true);
    const ready = await jobs.setParents(child._id, [done._id]);
    assert.deepEqual([ready.state, ready.parents, await ctx.queues.pending(wf)], ["READY", [done._id], 1]);
    assert.equal(ready.stateHistory.at(-1)?.message, `parents set to ${done._id.slice(0, 8)}: all finished`);
    await assert.rejects(jobs.setParents(open._id, [child._id, "no-such-job"]), NotFoundError);
    await assert.rejects(jobs.setParents(child._id, [child._id]), /its own parent/);
    await jobs.setParents(child._id, [open._id]);
    await assert.rejects(jobs.setParents(open._id, [child._id]), /cycle/);
    assert.deepEqual((await jobs.get(open._id)).parents, [], "a refused change changes nothing");
    const none = await jobs.setParents(child._id, []);
    assert.deepEqual([none.state, none.parents, await ctx.queues.pending(wf)], ["READY", [], 1]);
  });
});
