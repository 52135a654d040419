import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { writeFileSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../support/context.js";
import { useCliFixture } from "../support/fixture.js";
import { type LauncherProc } from "../support/launcher.js";
import { isFinal, queueItem, type AppSpec, type Job, type JobSpec } from "../../libs/client/index.js";
import { buildJob, insertJobs } from "../../libs/store/index.js";
import { coll } from "../../libs/store/collections.js";

/**
 * Hardening item 9: an error outside the launcher's handled paths used to
 * leave the job leased; the lease lapsed, the job restarted, and so on for
 * ever. Every failure must end in a recorded state with its reason, and a job
 * that keeps losing its launcher must stop coming back.
 */
const f = useCliFixture("fail");
const { ctx, script } = f;
const running: LauncherProc[] = [];

/** Stored as another client, or a balsam before the creation-time checks, could have stored it. */
async function storeApp(spec: AppSpec): Promise<void> {
  await coll(ctx.store).apps.insertOne({ _id: randomUUID(), preprocess: "", postprocess: "", envscript: "", description: "", createdAt: new Date(), ...spec });
}

async function storeJob(spec: JobSpec): Promise<Job> {
  const job = buildJob(spec);
  await insertJobs(ctx.store, [job]);
  await ctx.queues.enqueue([queueItem(job)]);
  return job;
}

function launch(wf: string, env: NodeJS.ProcessEnv = {}): LauncherProc {
  const l = f.start(wf, { env });
  running.push(l);
  return l;
}

/** Waits until every job is final; on timeout says where each one is. */
async function untilFinal(ids: string[], timeoutMs: number): Promise<Job[]> {
  try {
    await waitFor(async () => (await coll(ctx.store).jobs.find({ _id: { $in: ids } }).toArray()).every((j) => isFinal(j.state)), timeoutMs, "the jobs to end", 200);
  } catch {
    const jobs = await Promise.all(ids.map((id) => f.balsam.jobs.get(id)));
    assert.fail(`not every job ended:\n${jobs.map((j) => `${j.name.slice(0, 20)} ${j.state} attempts=${j.attempts} ${j.stateHistory.map((h) => h.state).join(">")}`).join("\n")}`);
  }
  return Promise.all(ids.map((id) => f.balsam.jobs.get(id)));
}

/**
 * Shell that SIGKILLs the job's launcher: the nearest node process above it
 * (its parent is the spawn helper, or the launcher itself without one).
 */
const KILL_LAUNCHER = `p=$PPID; while [ "$(cat /proc/$p/comm)" != node ]; do p=$(cut -d' ' -f4 /proc/$p/stat); done; kill -9 $p`;

function runsOf(log: string, id: string): number {
  return existsSync(log) ? readFileSync(log, "utf8").split("\n").filter((l) => l === id).length : 0;
}

describe("launcher failure paths", () => {
  after(async () => {
    for (const l of running) {
      if (l.child.exitCode === null && l.child.signalCode === null) l.child.kill("SIGTERM");
      await l.exited;
    }
  });

  test("a script the launcher cannot split, or a name too long for a directory, ends FAILED with the reason; nothing runs twice", async () => {
    const log = join(f.dir, "runs.log");
    const counted = script("counted.sh", `echo "$BALSAM_JOB_ID" >> ${log}`);
    await storeApp({ name: "badpost", executable: counted, postprocess: "echo a | cat" });
    await storeApp({ name: "badpre", executable: counted, preprocess: "echo a; echo b" });
    await storeApp({ name: "counted", executable: counted });
    const post = await storeJob({ name: "post", workflow: "BAD", application: "badpost" });
    const pre = await storeJob({ name: "pre", workflow: "BAD", application: "badpre" });
    const long = await storeJob({ name: "n".repeat(250), workflow: "BAD", application: "counted" });
    const ok = await storeJob({ name: "ok", workflow: "BAD", application: "counted" });

    const l = launch("BAD", { BALSAM_LEASE_TTL_MS: "2000" });
    const [p, q, n, o] = await untilFinal([post._id, pre._id, long._id, ok._id], 30_000);
    assert.equal(await l.exited, 0, l.output());

    assert.equal(p!.state, "FAILED");
    assert.match(p!.stateHistory.at(-1)!.message, /^postprocess could not start: postprocess 'echo a \| cat' contains shell syntax \('\|'\)/);
    assert.equal(p!.stateHistory.filter((h) => h.state === "RUN_DONE").length, 1);
    assert.equal(runsOf(log, post._id), 1, "the app of the job with the bad postprocess ran once");

    assert.equal(q!.state, "FAILED");
    assert.match(q!.stateHistory.at(-1)!.message, /^preprocess could not start: preprocess 'echo a; echo b' contains shell syntax \(';'\)/);
    assert.equal(q!.stateHistory.filter((h) => h.state === "STAGED_IN").length, 1);
    assert.equal(runsOf(log, pre._id), 0);

    assert.equal(n!.state, "FAILED");
    assert.match(n!.stateHistory.at(-1)!.message, /name is 250 characters long; at most 246 fit/);
    assert.ok(!n!.stateHistory.some((h) => h.state === "RUNNING"), "never shown RUNNING");
    assert.equal(runsOf(log, long._id), 0);

    assert.equal(o!.state, "JOB_FINISHED");
    for (const j of [p!, q!, n!, o!]) {
      assert.equal(j.attempts, 0, `${j.name.slice(0, 10)} was never restarted`);
      assert.equal(j.lock, null);
    }
  });

  // Two ways to lose a launcher: while the job runs ahead of its claim (its
  // queue entry's lock lapses: BullMQ's stalled limit) or after the claim
  // (its lease lapses). Either way the job stops coming back at the cap.
  for (const v of [
    { how: "before its claim", claimAfterMs: "1000", message: /^its launcher was lost 2 times while running it \(maxLeaseLapses 2\): not restarted/, restarts: 0 },
    { how: "under its lease", claimAfterMs: "0", message: /^lease of launcher \S+ lapsed for the 2nd time \(maxLeaseLapses 2\): not restarted/, restarts: 1 },
  ]) {
    test(`a job that keeps losing its launcher ${v.how} is FAILED after maxLeaseLapses (settings.json), saying why`, async () => {
      const settingsFile = join(f.db.dir, "settings.json");
      const settings = JSON.parse(readFileSync(settingsFile, "utf8")) as Record<string, unknown>;
      writeFileSync(settingsFile, JSON.stringify({ ...settings, maxLeaseLapses: 2 }));
      try {
        const log = join(f.dir, `crash-${v.claimAfterMs}.log`);
        // As a job that takes its node's memory down with the launcher would.
        await f.balsam.apps.add({ name: `crasher${v.claimAfterMs}`, executable: script(`crasher${v.claimAfterMs}.sh`, `echo "$BALSAM_JOB_ID" >> ${log}; ${KILL_LAUNCHER}; exec sleep 60`) });
        const j = await f.balsam.jobs.add({ name: "crasher", workflow: `CRASH${v.claimAfterMs}`, application: `crasher${v.claimAfterMs}` });
        for (let i = 0; i < 5 && !isFinal((await f.balsam.jobs.get(j._id)).state); i++) {
          // 3 s, not less: a launcher slowed by a busy machine must not be fenced (an extra run) before its job kills it.
          const l = launch(`CRASH${v.claimAfterMs}`, { BALSAM_LEASE_TTL_MS: "3000", BALSAM_CLAIM_AFTER_MS: v.claimAfterMs });
          await l.exited;
        }
        const d = await f.balsam.jobs.get(j._id);
        assert.equal(d.state, "FAILED", d.stateHistory.map((h) => `${h.state} ${h.message}`).join("\n"));
        assert.match(d.stateHistory.at(-1)!.message, v.message);
        assert.equal(d.stateHistory.filter((h) => h.state === "RESTART_READY").length, v.restarts);
        assert.equal(runsOf(log, j._id), 2);
        assert.equal(d.lock, null);
      } finally {
        writeFileSync(settingsFile, JSON.stringify(settings));
      }
    });
  }

  // The spawn helper (native/balsam-spawn.c) is the parent of the jobs'
  // processes: killed, it takes them down (their parent-death signal). The
  // launcher must see them lost, not failed, and run them again — ahead of
  // the claim (the entry goes back) or under the lease (RESTART_READY).
  for (const v of [
    { how: "before its claim", claimAfterMs: "1000", restarts: 0 },
    { how: "under its lease", claimAfterMs: "0", restarts: 1 },
  ]) {
    test(`a spawn helper killed -9 ${v.how} loses its jobs' processes, and the launcher runs them again`, async () => {
      const log = join(f.dir, `helper-${v.claimAfterMs}.log`);
      const mark = join(f.dir, `helper-${v.claimAfterMs}.killed`);
      // The first run kills its parent (the helper) and waits to be killed with it.
      const exe = script(`helperkill${v.claimAfterMs}.sh`, `echo "$BALSAM_JOB_ID" >> ${log}; if [ ! -e ${mark} ]; then touch ${mark}; kill -9 $PPID; exec sleep 60; fi; echo BALSAM-RESULT: 7`);
      await f.balsam.apps.add({ name: `helperkill${v.claimAfterMs}`, executable: exe });
      await f.balsam.apps.add({ name: `true${v.claimAfterMs}`, executable: "/bin/true" });
      const wf = `HELPER${v.claimAfterMs}`;
      const j = await f.balsam.jobs.add({ name: "victim", workflow: wf, application: `helperkill${v.claimAfterMs}` });
      const others = await f.balsam.jobs.addMany(Array.from({ length: 5 }, (_, i) => ({ name: `other${i}`, workflow: wf, application: `true${v.claimAfterMs}` })));
      const l = launch(wf, { BALSAM_CLAIM_AFTER_MS: v.claimAfterMs });
      const [d, ...rest] = await untilFinal([j._id, ...others.map((o) => o._id)], 60_000);
      assert.match(l.output(), /job processes start through \S+balsam-spawn \(vfork\)/);
      assert.match(l.output(), /balsam-spawn exited \(SIGKILL\): 1 job process\(es\) lost with it/);
      assert.equal(d!.state, "JOB_FINISHED", d!.stateHistory.map((h) => `${h.state} ${h.message}`).join("\n"));
      assert.equal(d!.data.result, 7);
      assert.equal(runsOf(log, j._id), 2);
      const restarts = d!.stateHistory.filter((h) => h.state === "RESTART_READY");
      assert.equal(restarts.length, v.restarts);
      if (v.restarts) assert.match(restarts[0]!.message, /its process was lost: \S+balsam-spawn exited \(SIGKILL\)/);
      assert.equal(d!.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1);
      for (const o of rest) assert.equal(o.state, "JOB_FINISHED");
      await l.exited;
    });
  }
});
