import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync, lstatSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../support/context.js";
import { useCliFixture } from "../support/fixture.js";
import { startLauncher } from "../support/launcher.js";

const f = useCliFixture("launch");
const { script } = f;
const launch = async (wf: string, args: string[] = [], env: NodeJS.ProcessEnv = {}) => {
  const l = f.start(wf, { exact: true, args, env });
  return { code: await l.exited, out: l.output() };
};

describe("serial launcher", () => {
  test("200 packed jobs all finish, each result recorded", async () => {
    await f.balsam.apps.add({ name: "echo", executable: script("echo.sh", 'echo "DH-OUTPUT: $1"') });
    await f.balsam.jobs.addMany(Array.from({ length: 200 }, (_, i) => ({ name: `task${i}`, workflow: "SER", application: "echo", args: String(i), nodePackingCount: 8 })));
    const { code, out } = await launch("SER");
    assert.equal(code, 0, out);
    const jobs = await f.balsam.jobs.filter({ workflow: "SER" }).list();
    assert.equal(jobs.length, 200);
    for (const j of jobs) {
      assert.equal(j.state, "JOB_FINISHED", `${j.name}: ${JSON.stringify(j.stateHistory)}`);
      assert.equal(j.data.result, Number(j.args));
      assert.deepEqual(j.stateHistory.map((h) => h.state), ["CREATED", "READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED"]);
      assert.equal(j.lock, null);
    }
    assert.match(readFileSync(join(jobs[0]!.workdir, `${jobs[0]!.name}.out`), "utf8"), /DH-OUTPUT/);
    assert.ok(jobs[0]!.workdir.startsWith(join(f.db.dir, "data", "SER", `${jobs[0]!.name}_${jobs[0]!._id.slice(0, 8)}`)));
  });

  test("RUN_ERROR fails the job; an error handler that exits 0 without setting the state fails it as 0.x did", async () => {
    await f.balsam.apps.add({ name: "bad", executable: script("bad.sh", "echo failing; exit 3"), postprocess: script("post.sh", 'echo "handled $BALSAM_JOB_STATE" > handled.txt') });
    const plain = await f.balsam.jobs.add({ name: "plain", workflow: "ERR", application: "bad" });
    const handled = await f.balsam.jobs.add({ name: "handled", workflow: "ERR", application: "bad", postErrorHandler: true });
    const { code, out } = await launch("ERR");
    assert.equal(code, 0, out);
    const p = await f.balsam.jobs.get(plain._id);
    assert.equal(p.state, "FAILED");
    assert.deepEqual(p.stateHistory.slice(-2).map((h) => [h.state, h.message]), [["RUN_ERROR", "exit code 3; output ends: failing"], ["FAILED", "exit code 3"]]);
    assert.equal(p.exitCode, 3);
    const h = await f.balsam.jobs.get(handled._id);
    assert.equal(h.state, "FAILED");
    // transitions.py:503-505: a handler must fix the state; one that ran but did not leaves the job FAILED.
    assert.deepEqual(h.stateHistory.slice(-3).map((x) => [x.state, x.message]), [["RUNNING", ""], ["RUN_ERROR", "exit code 3; output ends: failing"], ["FAILED", "Error handling didn't fix job state: marking FAILED"]]);
    assert.equal(readFileSync(join(h.workdir, "handled.txt"), "utf8").trim(), "handled RUN_ERROR");
  });

  test("a 3-level dependency chain passes files through input_files", async () => {
    await f.balsam.apps.add({ name: "step", executable: script("step.sh", 'if [ -n "$2" ]; then test -f "$2" || exit 7; cat "$2" > "$1.txt"; fi; echo "$1 parents=$BALSAM_PARENT_IDS" >> "$1.txt"') });
    const a = await f.balsam.jobs.add({ name: "a", workflow: "CHAIN", application: "step", args: "a" });
    const b = await f.balsam.jobs.add({ name: "b", workflow: "CHAIN", application: "step", args: "b a.txt", parents: [a._id], inputFiles: "a.txt" });
    const c = await f.balsam.jobs.add({ name: "c", workflow: "CHAIN", application: "step", args: "c b.txt", parents: [b._id], inputFiles: "*.txt" });
    assert.equal((await f.balsam.jobs.get(c._id)).state, "AWAITING_PARENTS");
    const { code, out } = await launch("CHAIN");
    assert.equal(code, 0, out);
    const cj = await f.balsam.jobs.get(c._id);
    assert.equal(cj.state, "JOB_FINISHED", JSON.stringify(cj.stateHistory));
    assert.ok(lstatSync(join(cj.workdir, "b.txt")).isSymbolicLink());
    const text = readFileSync(join(cj.workdir, "c.txt"), "utf8");
    assert.match(text, /^a parents=\[\]\nb parents=.+\nc parents=.+$/m);
    assert.ok(text.includes(`c parents=${JSON.stringify([b._id])}`));
  });

  test("a failed parent fails its children with the reason", async () => {
    const p = await f.balsam.jobs.add({ name: "p", workflow: "FAILCHAIN", application: "bad" });
    const k = await f.balsam.jobs.add({ name: "k", workflow: "FAILCHAIN", application: "echo", parents: [p._id] });
    const { code, out } = await launch("FAILCHAIN");
    assert.equal(code, 0, out);
    const kid = await f.balsam.jobs.get(k._id);
    assert.equal(kid.state, "FAILED");
    assert.equal(kid.stateHistory.at(-1)?.message, `parent ${p._id} is FAILED`);
  });

  test("a job running at the time limit ends RESTART_READY and a second launcher finishes it", async () => {
    // First attempt sleeps past the limit; the retry finds its marker and exits at once.
    await f.balsam.apps.add({ name: "slow", executable: script("slow.sh", 'if [ -f marker ]; then echo "DH-OUTPUT: 7"; exit 0; fi; touch marker; exec sleep 60') });
    const j = await f.balsam.jobs.add({ name: "slow", workflow: "TIME", application: "slow" , wallTimeMinutes: 0 });
    const first = await launch("TIME", ["--time-limit-minutes", "0.05"]);
    assert.equal(first.code, 0, first.out);
    const mid = await f.balsam.jobs.get(j._id);
    assert.equal(mid.state, "RESTART_READY", JSON.stringify(mid.stateHistory));
    assert.deepEqual(mid.stateHistory.slice(-2).map((h) => h.state), ["RUN_TIMEOUT", "RESTART_READY"]);
    assert.equal(mid.attempts, 1);
    const second = await launch("TIME");
    assert.equal(second.code, 0, second.out);
    const done = await f.balsam.jobs.get(j._id);
    assert.equal(done.state, "JOB_FINISHED");
    assert.equal(done.data.result, 7);
    assert.equal(done.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1);
  });

  test("killjob stops a running job's process; the job stays USER_KILLED", async () => {
    await f.balsam.apps.add({ name: "sleeper", executable: script("sleeper.sh", "echo $$ > pid; exec sleep 120") });
    const j = await f.balsam.jobs.add({ name: "victim", workflow: "KILL", application: "sleeper" });
    const l = startLauncher(["--wf-filter", "KILL", "--job-mode", "serial"], { ...f.db.env, BALSAM_NODELIST: "node1" });
    await waitFor(async () => (await f.balsam.jobs.get(j._id)).state === "RUNNING" && existsSync(join((await f.balsam.jobs.get(j._id)).workdir, "pid")), 20_000, "the job to run");
    const pid = Number(readFileSync(join((await f.balsam.jobs.get(j._id)).workdir, "pid"), "utf8"));
    const killed = await f.balsam.jobs.kill(j._id);
    assert.deepEqual(killed, [j._id]);
    const code = await l.exited;
    assert.equal(code, 0, l.output());
    const after = await f.balsam.jobs.get(j._id);
    assert.equal(after.state, "USER_KILLED");
    assert.throws(() => process.kill(pid, 0), /ESRCH/);
  });

  test("two launchers share 500 jobs; each job runs once", async () => {
    const log = join(f.dir, "ran.log");
    await f.balsam.apps.add({ name: "mark", executable: script("mark.sh", `echo "$BALSAM_JOB_ID" >> ${log}`) });
    await f.balsam.jobs.addMany(Array.from({ length: 500 }, (_, i) => ({ name: `m${i}`, workflow: "SHARE", application: "mark", nodePackingCount: 4 })));
    const l1 = startLauncher(["--wf-filter", "SHARE", "--job-mode", "serial"], { ...f.db.env, BALSAM_NODELIST: "node1" });
    const l2 = startLauncher(["--wf-filter", "SHARE", "--job-mode", "serial"], { ...f.db.env, BALSAM_NODELIST: "node2" });
    const [c1, c2] = await Promise.all([l1.exited, l2.exited]);
    assert.equal(c1, 0, l1.output());
    assert.equal(c2, 0, l2.output());
    const ran = readFileSync(log, "utf8").trim().split("\n");
    assert.equal(ran.length, 500);
    assert.equal(new Set(ran).size, 500);
    assert.deepEqual(await f.balsam.jobs.filter({ workflow: "SHARE" }).byState(), { JOB_FINISHED: 500 });
    const owners = new Set((await f.balsam.jobs.filter({ workflow: "SHARE" }).list()).map((j) => j.stateHistory.find((h) => h.state === "STAGED_IN")?.message));
    assert.equal(owners.size, 2, "both launchers took jobs");
  });

  test("a launcher killed with SIGKILL: its jobs are finished by another after the lease lapses", async () => {
    await f.balsam.apps.add({ name: "once", executable: script("once.sh", 'if [ -f marker ]; then echo "DH-OUTPUT: 1"; exit 0; fi; touch marker; exec sleep 60') });
    const jobs = await f.balsam.jobs.addMany([0, 1].map((i) => ({ name: `lost${i}`, workflow: "LOST", application: "once", nodePackingCount: 2 })));
    const env = { ...f.db.env, BALSAM_NODELIST: "node1", BALSAM_LEASE_TTL_MS: "2000" };
    const l1 = startLauncher(["--wf-filter", "LOST", "--job-mode", "serial"], env);
    await waitFor(async () => (await f.balsam.jobs.filter({ workflow: "LOST", state: "RUNNING" }).count()) === 2, 20_000, "both jobs to run");
    l1.child.kill("SIGKILL");
    await l1.exited;
    const l2 = startLauncher(["--wf-filter", "LOST", "--job-mode", "serial"], env);
    assert.equal(await l2.exited, 0, l2.output());
    for (const j of jobs) {
      const d = await f.balsam.jobs.get(j._id);
      assert.equal(d.state, "JOB_FINISHED", JSON.stringify(d.stateHistory));
      assert.ok(d.stateHistory.some((h) => h.state === "RESTART_READY" && /lease of launcher .* lapsed/.test(h.message)));
      assert.equal(d.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1);
    }
  });
});
