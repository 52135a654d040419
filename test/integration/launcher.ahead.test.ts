import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { waitFor, alive } from "../support/context.js";
import { runBalsam } from "../support/cli.js";
import { exitedWithin } from "../support/launcher.js";
import { useCliFixture } from "../support/fixture.js";
import { coll } from "../../libs/store/collections.js";

/**
 * Jobs run ahead of their claim (DESIGN §7): a short job is recorded in one
 * write, exclusivity meanwhile coming from its queue entry's lock. These
 * tests check what that must not break: a launcher killed with jobs started
 * but not yet written, a kill or a modify of a queued job, a long job still
 * leased while it runs.
 */
const f = useCliFixture("ahead");

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
}

describe("jobs running ahead of their claim", () => {
  test("short jobs cost at most one database write each, and their history is whole", async () => {
    await f.balsam.apps.add({ name: "true", executable: "/bin/true" });
    const n = 300;
    await f.balsam.jobs.addMany(Array.from({ length: n }, (_, i) => ({ name: `t${i}`, workflow: "ONE", application: "true", nodePackingCount: 4 })));
    const out = await f.launch("ONE", { withinMs: 120_000 });
    const jobs = await f.balsam.jobs.filter({ workflow: "ONE" }).list();
    for (const j of jobs) {
      assert.equal(j.state, "JOB_FINISHED");
      assert.deepEqual(j.stateHistory.map((h) => h.state), ["CREATED", "READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED"]);
      assert.equal(j.exitCode, 0);
      assert.ok(j.runtimeSeconds !== null && j.runtimeSeconds >= 0);
    }
    // The launcher's own count (driver command monitoring): one `update`
    // statement per job at most — they travel in bulks, so fewer commands —
    // and no `find` for the jobs: those added together come in chunks whose
    // snapshots are kept with them (one `find` per chunk when they were not:
    // 38 here), besides a few of its own.
    const counts = /\d+ database commands \(\S+ per job: ([^)]*)\)/.exec(out);
    assert.ok(counts, out);
    const count = (name: string) => Number(new RegExp(`\\b${name} (\\d+)`).exec(counts[1]!)?.[1] ?? 0);
    assert.ok(count("update") > 0 && count("update") <= n, `update commands ${count("update")} for ${n} jobs: ${counts[1]}`);
    assert.ok(count("find") < 20, `find commands ${count("find")} for ${n} jobs: ${counts[1]}`);
    // Beside its own costs, what the jobs' processes themselves used (the spawn helper's reaped children).
    const jobsCpu = /its jobs' processes CPU (\d+) ms/.exec(out);
    assert.ok(jobsCpu && Number(jobsCpu[1]) > 0, out);
    // And how long its nodes stood empty with no job in hand for them (its own gaps), a share of the run.
    const empty = /its nodes stood empty with no job waiting (\d+\.\d)% of the time/.exec(out);
    assert.ok(empty && Number(empty[1]) >= 0 && Number(empty[1]) <= 100, out);
  });

  test("kill -9 of a launcher holding jobs started but not yet written: they run again once its entries' locks lapse, each finishes once", async () => {
    const log = join(f.dir, "kill9.log");
    // Starts, then ends well inside the claim delay: killed now, nothing about it is written yet.
    const app = f.script("slowish.sh", `echo "start $BALSAM_JOB_ID" >> ${log}\nsleep 0.6\necho "end $BALSAM_JOB_ID" >> ${log}`);
    await f.balsam.apps.add({ name: "slowish", executable: app });
    const jobs = await f.balsam.jobs.addMany(Array.from({ length: 8 }, (_, i) => ({ name: `k${i}`, workflow: "KILL9", application: "slowish", nodePackingCount: 4 })));
    const env = { BALSAM_LEASE_TTL_MS: "3000", BALSAM_CLAIM_AFTER_MS: "1000" };
    const first = f.start("KILL9", { env });
    await waitFor(() => lines(log).some((x) => x.startsWith("start")), 30_000, "a job to start");
    first.child.kill("SIGKILL");
    await first.exited;
    const startedBefore = new Set(lines(log).filter((x) => x.startsWith("start")).map((x) => x.slice(6)));
    // Nothing was written for them: still READY, with no lease.
    for (const id of startedBefore) {
      const j = await f.balsam.jobs.get(id);
      if (lines(log).includes(`end ${id}`)) continue;
      assert.equal(j.state, "READY", JSON.stringify(j.stateHistory));
      assert.equal(j.lock, null);
    }
    await f.launch("KILL9", { env, withinMs: 120_000 });
    const all = lines(log);
    for (const j of jobs) {
      const doc = await f.balsam.jobs.get(j._id);
      assert.equal(doc.state, "JOB_FINISHED", JSON.stringify(doc.stateHistory));
      assert.equal(doc.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1);
      assert.equal(doc.stateHistory.filter((h) => h.state === "RUNNING").length, 1, JSON.stringify(doc.stateHistory));
      assert.ok(all.includes(`end ${j._id}`), `${j.name} never ended`);
    }
    // A run cut short (or ended but not yet written) runs again; the database records one finish whatever the log says.
    assert.ok([...startedBefore].some((id) => all.filter((x) => x === `start ${id}`).length === 2), `no job ran again:\n${all.join("\n")}`);
  });

  test("killjob stops a job running ahead of its claim: USER_KILLED, never RUNNING, its process gone", async () => {
    const pidFile = join(f.dir, "ahead.pid");
    const app = f.script("sleeper.sh", `echo $$ > ${pidFile}\nexec sleep 60`);
    await f.balsam.apps.add({ name: "sleeper", executable: app });
    const job = await f.balsam.jobs.add({ name: "sleepy", workflow: "AKILL", application: "sleeper" });
    const l = f.start("AKILL", { env: { BALSAM_LEASE_TTL_MS: "60000", BALSAM_CLAIM_AFTER_MS: "10000" } });
    await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "", 30_000, "the job to start");
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    assert.equal((await f.balsam.jobs.get(job._id)).state, "READY");
    const r = await runBalsam(["killjob", "--id", job._id], { env: f.db.env });
    assert.equal(r.code, 0, r.stderr);
    await waitFor(() => !alive(pid), 20_000, "the job's process to end");
    assert.equal(await exitedWithin(l, 60_000), 0, l.output());
    const doc = await f.balsam.jobs.get(job._id);
    assert.equal(doc.state, "USER_KILLED");
    assert.ok(!doc.stateHistory.some((h) => h.state === "RUNNING" || h.state === "JOB_FINISHED"), JSON.stringify(doc.stateHistory));
  });

  test("a job still running after the claim delay is recorded RUNNING under a lease, then finished once", async () => {
    const go = join(f.dir, "go");
    const app = f.script("waiter.sh", `while [ ! -f ${go} ]; do sleep 0.05; done\necho "BALSAM-RESULT: 42"`);
    await f.balsam.apps.add({ name: "waiter", executable: app });
    const job = await f.balsam.jobs.add({ name: "long", workflow: "LONG", application: "waiter" });
    const l = f.start("LONG", { env: { BALSAM_CLAIM_AFTER_MS: "300" } });
    await waitFor(async () => (await f.balsam.jobs.get(job._id)).state === "RUNNING", 30_000, "the job to be claimed");
    const running = await f.balsam.jobs.get(job._id);
    assert.ok(running.lock && running.lock.until > new Date(), JSON.stringify(running.lock));
    writeFileSync(go, "");
    assert.equal(await exitedWithin(l, 60_000), 0, l.output());
    const doc = await f.balsam.jobs.get(job._id);
    assert.equal(doc.state, "JOB_FINISHED");
    assert.equal(doc.data.result, 42);
    assert.deepEqual(doc.stateHistory.map((h) => h.state), ["CREATED", "READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED"]);
    assert.equal(doc.lock, null);
  });

  test("balsam modify of a queued job: the launcher runs it as modified, once", async () => {
    const log = join(f.dir, "args.log");
    const app = f.script("say.sh", `echo "$1" >> ${log}`);
    await f.balsam.apps.add({ name: "say", executable: app });
    const job = await f.balsam.jobs.add({ name: "said", workflow: "MOD", application: "say", args: "old" });
    const r = await runBalsam(["modify", job._id, "args", "new"], { env: f.db.env });
    assert.equal(r.code, 0, r.stderr);
    await f.launch("MOD", { withinMs: 60_000 });
    assert.deepEqual(lines(log), ["new"]);
    assert.equal((await f.balsam.jobs.get(job._id)).state, "JOB_FINISHED");
  });

  test("filter().update() of queued jobs' launch fields: the launcher runs them as updated, once", async () => {
    const log = join(f.dir, "bulk-args.log");
    const app = f.script("say2.sh", `echo "$BALSAM_JOB_ID $1" >> ${log}`);
    await f.balsam.apps.add({ name: "say2", executable: app });
    const jobs = await f.balsam.jobs.addMany(Array.from({ length: 5 }, (_, i) => ({ name: `u${i}`, workflow: "UPD", application: "say2", args: "old" })));
    assert.equal(await f.balsam.jobs.filter({ workflow: "UPD" }).update({ args: "new" }), 5);
    await f.launch("UPD", { withinMs: 60_000 });
    assert.deepEqual(lines(log).map((x) => x.split(" ")[1]), ["new", "new", "new", "new", "new"]);
    assert.deepEqual(new Set(lines(log).map((x) => x.split(" ")[0])), new Set(jobs.map((j) => j._id)));
  });

  test("a job changed after its launcher took it: the write conditioned on its old version misses, and it runs again as it now is", async () => {
    const log = join(f.dir, "race.log");
    const gate = join(f.dir, "gate");
    // The first run waits for the test to change the job, then ends inside the claim delay.
    const app = f.script("gated.sh", `echo "$1" >> ${log}\nif [ "$1" = before ]; then while [ ! -f ${gate} ]; do sleep 0.02; done; fi`);
    await f.balsam.apps.add({ name: "gated", executable: app });
    const job = await f.balsam.jobs.add({ name: "raced", workflow: "RACE", application: "gated", args: "before" });
    const l = f.start("RACE", { env: { BALSAM_LEASE_TTL_MS: "60000", BALSAM_CLAIM_AFTER_MS: "10000" } });
    await waitFor(() => lines(log).includes("before"), 30_000, "the first run to start");
    // Straight to the store, as a racing writer would: the queue entry is already taken.
    await coll(f.balsam.store).jobs.updateOne({ _id: job._id, state: "READY" }, { $set: { args: "after", updatedAt: new Date() } });
    writeFileSync(gate, "");
    assert.equal(await exitedWithin(l, 60_000), 0, l.output());
    assert.deepEqual(lines(log), ["before", "after"]);
    const doc = await f.balsam.jobs.get(job._id);
    assert.equal(doc.state, "JOB_FINISHED");
    assert.equal(doc.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1);
  });
});
