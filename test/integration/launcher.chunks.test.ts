import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../support/context.js";
import { runBalsam } from "../support/cli.js";
import { useCliFixture } from "../support/fixture.js";
import { coll } from "../../libs/store/collections.js";
import { runnableOfChunk } from "../../libs/store/index.js";
import { CHUNK_SIZE, reenqueueRunnable } from "../../libs/client/index.js";

/**
 * Chunks (libs/client/add.ts): jobs added together share one queue entry per
 * CHUNK_SIZE, which carries only their ids; the launcher reads them afresh
 * when it takes the entry. These tests check what that must keep exact: each
 * job runs once; a job killed, modified or deleted while its chunk waits is
 * seen as it now is; a chunk is offered again as a chunk, and a restarted job
 * (an entry of its own) is never run through its old chunk too.
 */
const f = useCliFixture("chunks");

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
}

/** Job id → how many times the log says it ran. */
function runs(file: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const l of lines(file)) m.set(l.split(" ")[0]!, (m.get(l.split(" ")[0]!) ?? 0) + 1);
  return m;
}

describe("chunks of jobs added together", () => {
  test("20 jobs added together make 3 entries (8, 8, 4); a launcher runs each once", async () => {
    const log = join(f.dir, "twenty.log");
    await f.balsam.apps.add({ name: "say20", executable: f.script("say20.sh", `echo "$BALSAM_JOB_ID $1" >> ${log}`) });
    const jobs = await f.balsam.jobs.addMany(Array.from({ length: 20 }, (_, i) => ({ name: `t${i}`, workflow: "CH20", application: "say20", args: "x", nodePackingCount: 4 })));
    const sizes = new Map<string, number>();
    for (const j of jobs) sizes.set(j.chunk!, (sizes.get(j.chunk!) ?? 0) + 1);
    assert.deepEqual([...sizes.values()], [CHUNK_SIZE, CHUNK_SIZE, 20 - 2 * CHUNK_SIZE]);
    assert.equal(await f.balsam.queues.pending("CH20"), 3);
    await f.launch("CH20", { withinMs: 60_000 });
    assert.deepEqual(runs(log), new Map(jobs.map((j) => [j._id, 1])));
    for (const j of await f.balsam.jobs.filter({ workflow: "CH20" }).list()) assert.equal(j.state, "JOB_FINISHED");
    assert.equal(await f.balsam.queues.pending("CH20"), 0);
  });

  test("killjob, modify and rm of jobs inside a waiting chunk: the killed and the deleted never run, the modified runs as modified, the rest once", async () => {
    const log = join(f.dir, "edits.log");
    await f.balsam.apps.add({ name: "say8", executable: f.script("say8.sh", `echo "$BALSAM_JOB_ID $1" >> ${log}`) });
    const jobs = await f.balsam.jobs.addMany(Array.from({ length: 8 }, (_, i) => ({ name: `e${i}`, workflow: "CHEDIT", application: "say8", args: "old", nodePackingCount: 4 })));
    assert.equal(new Set(jobs.map((j) => j.chunk)).size, 1, "one chunk");
    const [killed, modified, deleted] = jobs;
    for (const args of [["killjob", "--id", killed!._id], ["modify", modified!._id, "args", "new"], ["rm", "jobs", "--id", deleted!._id, "--force"]]) {
      const r = await runBalsam(args, { env: f.db.env });
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    }
    // The chunk's entry stays for the other jobs.
    assert.equal(await f.balsam.queues.pending("CHEDIT"), 1);
    await f.launch("CHEDIT", { withinMs: 60_000 });
    const ran = lines(log);
    assert.ok(!ran.some((l) => l.startsWith(killed!._id)), `the killed job ran: ${ran.join("; ")}`);
    assert.ok(!ran.some((l) => l.startsWith(deleted!._id)), `the deleted job ran: ${ran.join("; ")}`);
    assert.deepEqual(ran.filter((l) => l.startsWith(modified!._id)), [`${modified!._id} new`]);
    assert.deepEqual(runs(log), new Map(jobs.slice(1).filter((j) => j !== deleted).map((j) => [j._id, 1])));
    assert.equal((await f.balsam.jobs.get(killed!._id)).state, "USER_KILLED");
    for (const j of jobs.slice(3)) assert.equal((await f.balsam.jobs.get(j._id)).state, "JOB_FINISHED");
  });

  test("a job given a parent while its chunk waits runs after the parent, not from the snapshot its chunk was made with", async () => {
    const log = join(f.dir, "dep.log");
    // The parent says so when it ends, a while after it starts; the chunk's jobs as they start.
    const app = f.script("dep.sh", `if [ "$1" = parent ]; then sleep 1; fi\necho "$BALSAM_JOB_ID $1" >> ${log}`);
    await f.balsam.apps.add({ name: "dep", executable: app });
    const jobs = await f.balsam.jobs.addMany(Array.from({ length: 4 }, (_, i) => ({ name: `d${i}`, workflow: "CHDEP", application: "dep", args: "child", nodePackingCount: 4 })));
    assert.equal(new Set(jobs.map((j) => j.chunk)).size, 1, "one chunk");
    // Added after the chunk: its entry comes second, so a child run from its stale snapshot would start first.
    const parent = await f.balsam.jobs.add({ name: "p", workflow: "CHDEP", application: "dep", args: "parent", nodePackingCount: 4 });
    const r = await runBalsam(["dep", parent._id, jobs[1]!._id], { env: f.db.env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await f.balsam.jobs.get(jobs[1]!._id)).state, "AWAITING_PARENTS");
    await f.launch("CHDEP", { withinMs: 60_000 });
    const order = lines(log).map((l) => l.split(" ")[0]);
    assert.ok(order.indexOf(parent._id) >= 0 && order.indexOf(parent._id) < order.indexOf(jobs[1]!._id), `ran in this order: ${lines(log).join("; ")}`);
    assert.deepEqual(runs(log), new Map([...jobs, parent].map((j) => [j._id, 1])));
  });

  test("killjob of a job whose chunk a launcher holds, waiting for a slot: it never starts", async () => {
    const log = join(f.dir, "held.log");
    const go = join(f.dir, "held.go");
    // The first job holds the launcher's one slot until told; the others wait in the chunk, read already.
    const app = f.script("held.sh", `echo "$BALSAM_JOB_ID $1" >> ${log}\nif [ "$1" = first ]; then while [ ! -f ${go} ]; do sleep 0.05; done; fi`);
    await f.balsam.apps.add({ name: "held", executable: app });
    const jobs = await f.balsam.jobs.addMany(["first", "second", "third"].map((args, i) => ({ name: `h${i}`, workflow: "CHHELD", application: "held", args })));
    assert.equal(new Set(jobs.map((j) => j.chunk)).size, 1, "one chunk");
    const l = f.start("CHHELD", { env: { BALSAM_NODELIST: "node1" } });
    await waitFor(() => runs(log).has(jobs[0]!._id), 30_000, "the first job to start");
    const r = await runBalsam(["killjob", "--id", jobs[2]!._id], { env: f.db.env });
    assert.equal(r.code, 0, r.stderr);
    await waitFor(async () => (await f.balsam.jobs.get(jobs[2]!._id)).state === "USER_KILLED", 10_000, "the kill to be recorded");
    writeFileSync(go, "");
    await waitFor(async () => (await f.balsam.jobs.get(jobs[1]!._id)).state === "JOB_FINISHED", 60_000, "the second job to finish");
    l.child.kill("SIGTERM");
    await l.exited;
    assert.deepEqual(runs(log), new Map([jobs[0]!, jobs[1]!].map((j) => [j._id, 1])), `${lines(log).join("; ")}\n${l.output().slice(-2000)}`);
    assert.equal((await f.balsam.jobs.get(jobs[2]!._id)).state, "USER_KILLED");
  });

  test("a flushed queue gets its chunks back, not an entry per job; a restarted job has its own entry and runs once", async () => {
    const log = join(f.dir, "flush.log");
    await f.balsam.apps.add({ name: "say16", executable: f.script("say16.sh", `echo "$BALSAM_JOB_ID $1" >> ${log}`) });
    const jobs = await f.balsam.jobs.addMany(Array.from({ length: 16 }, (_, i) => ({ name: `f${i}`, workflow: "CHFLUSH", application: "say16", args: "x", nodePackingCount: 4 })));
    await f.balsam.queues.obliterate("CHFLUSH");
    // As lease recovery leaves a job whose launcher was lost: restarted, its attempt counted.
    const restarted = jobs[3]!;
    await coll(f.balsam.store).jobs.updateOne({ _id: restarted._id }, { $set: { state: "RESTART_READY" }, $inc: { attempts: 1 } });
    assert.equal(await reenqueueRunnable(f.balsam.store, f.balsam.queues, ["CHFLUSH"]), 16);
    assert.equal(await f.balsam.queues.pending("CHFLUSH"), 3, "2 chunks and the restarted job's own entry");
    assert.ok(await f.balsam.queues.has({ id: restarted._id, workflow: "CHFLUSH", attempts: 1 }));
    // A chunk's entry made before the restart still lists it (one deferred, say): its reader must not offer it too,
    // or two launchers could run it at once, one through each entry.
    assert.deepEqual((await runnableOfChunk(f.balsam.store, restarted.chunk!, jobs.map((j) => j._id))).map((j) => j._id).sort(), jobs.filter((j) => j.chunk === restarted.chunk && j !== restarted).map((j) => j._id).sort());
    await f.launch("CHFLUSH", { withinMs: 60_000 });
    // Its chunk's reader skips it (attempts 1): run twice, it could have run twice at once.
    assert.deepEqual(runs(log), new Map(jobs.map((j) => [j._id, 1])));
    const doc = await f.balsam.jobs.get(restarted._id);
    assert.equal(doc.state, "JOB_FINISHED");
    assert.equal(doc.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1);
  });

  test("a tagged launcher leaves chunks (untagged jobs only) to others, reading nothing; tagged jobs keep entries of their own", async () => {
    const log = join(f.dir, "tags.log");
    await f.balsam.apps.add({ name: "saytag", executable: f.script("saytag.sh", `echo "$BALSAM_JOB_ID $1" >> ${log}`) });
    const plain = await f.balsam.jobs.addMany(Array.from({ length: 8 }, (_, i) => ({ name: `p${i}`, workflow: "CHTAG", application: "saytag", args: "x", nodePackingCount: 4 })));
    const tagged = await f.balsam.jobs.addMany(Array.from({ length: 4 }, (_, i) => ({ name: `g${i}`, workflow: "CHTAG", application: "saytag", args: "x", tags: { site: "a" }, nodePackingCount: 4 })));
    assert.ok(tagged.every((j) => j.chunk === undefined));
    assert.equal(await f.balsam.queues.pending("CHTAG"), 1 + 4);
    const l = f.start("CHTAG", { args: ["--tag", "site=a"] });
    await waitFor(() => tagged.every((j) => runs(log).get(j._id) === 1), 60_000, "the tagged jobs to run");
    l.child.kill("SIGTERM");
    await l.exited;
    assert.ok(plain.every((j) => !runs(log).has(j._id)), "a tagged launcher ran an untagged job");
    await f.launch("CHTAG", { withinMs: 60_000 });
    assert.deepEqual(runs(log), new Map([...tagged, ...plain].map((j) => [j._id, 1])));
  });
});
