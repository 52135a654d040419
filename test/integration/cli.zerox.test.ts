import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { runBalsam } from "../support/cli.js";
import { useCliFixture } from "../support/fixture.js";
import { coll } from "../../libs/store/collections.js";

/**
 * What a Balsam 0.x user types (issue 13), run as they run it: the built
 * `balsam` in a subprocess, each command line as 0.x's docs and recipes
 * spell it, checked through what lands in MongoDB and Redis.
 */
const f = useCliFixture("zerox");
const { ctx, ok } = f;

f.setup(async () => {
  await f.balsam.apps.add({ name: "ok", executable: "/bin/true" });
});

async function addJob(args: string[]): Promise<string> {
  return (await ok(["job", "--yes", "--application", "ok", ...args])).stdout.trim();
}

async function job(id: string) {
  const j = await coll(ctx.store).jobs.findOne({ _id: id });
  assert.ok(j, `job ${id} is in MongoDB`);
  return j;
}

function states(j: { stateHistory: Array<{ state: string }> }): string[] {
  return j.stateHistory.map((h) => h.state);
}

async function runLauncher(wf: string): Promise<void> {
  await f.launch(wf, { withinMs: 120_000 });
}

describe("rerun (issue 13 item 1)", () => {
  test("0.x's recipe `balsam modify ID state CREATED` reruns a killed job; its child, failed for it, waits again and both run", async () => {
    const parent = await addJob(["--name", "p", "--workflow", "RERUN"]);
    const child = await addJob(["--name", "c", "--workflow", "RERUN"]);
    await ok(["dep", parent, child]);
    await ok(["killjob", "--id", parent]);
    assert.equal((await job(parent)).state, "USER_KILLED");
    const failed = await job(child);
    assert.equal(failed.state, "FAILED");
    assert.equal(failed.failedByParent, parent);
    assert.equal(await ctx.queues.has({ id: parent, workflow: "RERUN", attempts: 0 }), false);

    const r = await ok(["modify", parent, "state", "CREATED"]);
    assert.match(r.stdout, new RegExp(`${parent}: state USER_KILLED -> READY`));
    const p = await job(parent);
    assert.equal(p.state, "READY");
    assert.equal(p.attempts, 1, "a rerun counts as an attempt");
    assert.deepEqual(states(p), ["CREATED", "READY", "USER_KILLED", "READY"], "history is kept");
    assert.match(p.stateHistory.at(-1)?.message ?? "", /set by balsam modify \(CREATED\): attempt 2/);
    assert.equal(await ctx.queues.has({ id: parent, workflow: "RERUN", attempts: 1 }), true, "re-enqueued under its new attempt");
    const c = await job(child);
    assert.equal(c.state, "AWAITING_PARENTS");
    assert.equal(c.failedByParent, undefined);
    assert.match(c.stateHistory.at(-1)?.message ?? "", new RegExp(`re-armed: parent ${parent} is rerun`));

    await runLauncher("RERUN");
    assert.equal((await job(parent)).state, "JOB_FINISHED");
    assert.equal((await job(child)).state, "JOB_FINISHED");
  });

  test("`balsam rerun --wf WF --state FAILED` reruns only the failed ones; a finished job stays finished", async () => {
    const a = await addJob(["--name", "a", "--workflow", "RR2"]);
    const b = await addJob(["--name", "b", "--workflow", "RR2"]);
    const done = await addJob(["--name", "done", "--workflow", "RR2"]);
    await ok(["modify", a, "state", "FAILED"]);
    await ok(["modify", b, "state", "FAILED"]);
    await runLauncher("RR2");
    assert.equal((await job(done)).state, "JOB_FINISHED");
    const r = await ok(["rerun", "--wf", "RR2", "--state", "FAILED"]);
    assert.match(r.stdout, /^rerun 2 job\(s\)/);
    assert.equal((await job(a)).state, "READY");
    assert.equal((await job(b)).state, "READY");
    assert.equal((await job(done)).state, "JOB_FINISHED");
    assert.equal(await ctx.queues.pending("RR2"), 2);
    // Without --state every final job of the selection runs again, the finished one too.
    await ok(["modify", a, "state", "FAILED"]);
    await ok(["rerun", "--wf", "RR2", "--name", "done"]);
    assert.equal((await job(done)).state, "READY");
    assert.equal((await job(done)).attempts, 1);
    assert.equal((await job(a)).state, "FAILED", "--name narrows");
  });

  test("a job that is not final is refused by id, and a child of a failed parent left out is skipped", async () => {
    const ready = await addJob(["--name", "r", "--workflow", "RR3"]);
    const r = await f.db.run(["rerun", ready]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is READY; only FAILED, USER_KILLED or JOB_FINISHED jobs can be rerun/);
    const p = await addJob(["--name", "p", "--workflow", "RR3"]);
    const c = await addJob(["--name", "c", "--workflow", "RR3"]);
    await ok(["dep", p, c]);
    await ok(["killjob", "--id", p]);
    const skip = await f.db.run(["rerun", "--wf", "RR3", "--state", "FAILED"]);
    assert.equal(skip.code, 1, skip.stderr);
    assert.match(skip.stderr, new RegExp(`not rerun: ${c}: parent ${p} is USER_KILLED; rerun it too`));
    assert.equal((await job(c)).state, "FAILED");
  });
});

describe("0.x spellings (issue 13 item 3)", () => {
  test("--args and --input-files take several words; underscore options; --env A=1:B=2", async () => {
    const id = await addJob([
      "--name", "words", "--workflow", "SPELL", "--args", "a", "b", "c", "--input-files", "*.log", "gopt.dat",
      "--post_handle_error", "--post_handle_timeout", "--disable_auto_timeout_retry", "--num_nodes", "2",
      "--env", "A=1:B=2", "--env", "PATH=/usr/bin:/bin", "C=x\\:D=y",
    ]);
    const j = await job(id);
    assert.equal(j.args, "a b c");
    assert.equal(j.inputFiles, "*.log gopt.dat");
    assert.equal(j.postErrorHandler, true);
    assert.equal(j.postTimeoutHandler, true);
    assert.equal(j.autoTimeoutRetry, false);
    assert.equal(j.numNodes, 2);
    assert.deepEqual(j.environVars, { A: "1", B: "2", PATH: "/usr/bin:/bin", C: "x:D=y" });
    // One quoted word starting with a dash is still one value (the seed's line).
    const seed = await addJob(["--name", "seed", "--workflow", "SPELL", "--args", "--evaluator balsam --problem p"]);
    assert.equal((await job(seed)).args, "--evaluator balsam --problem p");
  });

  test("unique abbreviations of long options, everywhere", async () => {
    const id = (await ok(["job", "--ye", "--nam", "abbr", "--appl", "ok", "--workf", "SPELL", "--wall-t", "7"])).stdout.trim();
    assert.equal((await job(id)).wallTimeMinutes, 7);
    const hist = await ok(["ls", "--hist", "--name", "abbr"]);
    assert.match(hist.stdout, new RegExp(`${id} \\| abbr \\| SPELL \\| READY\\n  \\S+  CREATED`));
    const amb = await f.db.run(["ls", "--h"]);
    assert.equal(amb.code, 2);
    assert.match(amb.stderr, /^balsam: option '--h' is ambiguous: it could be --history, --help/);
  });

  test("ls job, rm job, rm jobs --wf-filter", async () => {
    const id = await addJob(["--name", "gone", "--workflow", "SPELL2"]);
    const keep = await addJob(["--name", "kept", "--workflow", "SPELL2"]);
    assert.match((await ok(["ls", "job", "--wf-filter", "SPELL2"])).stdout, /gone/);
    await ok(["rm", "jobs", "--wf-filter", "SPELL2", "--name", "gone", "--force"]);
    assert.equal(await coll(ctx.store).jobs.countDocuments({ _id: id }), 0);
    await ok(["rm", "job", "--id", keep, "--force"]);
    assert.equal(await coll(ctx.store).jobs.countDocuments({ workflow: "SPELL2" }), 0);
  });

  test("mkchild --wall-minutes --preprocessor --postprocessor", async () => {
    const parent = await addJob(["--name", "mom", "--workflow", "SPELL3"]);
    const r = await ok(["mkchild", "--parent", parent, "--name", "kid", "--application", "ok", "--wall-minutes", "9", "--preprocessor", "pre.sh", "--postprocessor", "post.sh", "--yes"]);
    const kid = await job(r.stdout.trim());
    assert.equal(kid.wallTimeMinutes, 9);
    assert.equal(kid.preprocess, "pre.sh");
    assert.equal(kid.postprocess, "post.sh");
    assert.deepEqual(kid.parents, [parent]);
  });

  test("-V and --version print the version", async () => {
    const { version } = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
    assert.equal((await runBalsam(["-V"])).stdout.trim(), version);
    assert.equal((await runBalsam(["--version"])).stdout.trim(), version);
  });
});

describe("database activation (issue 13 item 10)", () => {
  test("which --name, which with no database, activate / deactivate, cd", async () => {
    const home = { BALSAM_HOME: f.db.env.BALSAM_HOME };
    const other = mkdtempSync(join(tmpdir(), "balsam-zerox-"));
    try {
      const second = join(other, "second-db");
      assert.equal((await runBalsam(["init", second, "--mongo-url", ctx.mongoUrl, "--redis-url", ctx.redisUrl], { env: home })).code, 0);
      const one = await runBalsam(["which", "--name", "second"], { env: home });
      assert.equal(one.code, 0, one.stderr);
      assert.equal(one.stdout.trim(), second);
      const several = await runBalsam(["which", "--name", "/"], { env: home });
      assert.equal(several.code, 1);
      assert.match(several.stderr, /matches 2 known databases/);
      assert.equal((await runBalsam(["which", "--name", "nowhere"], { env: home })).code, 1);
      const list = await runBalsam(["which"], { env: { ...home, BALSAM_DB_PATH: "" } });
      assert.equal(list.code, 0, list.stderr);
      assert.deepEqual(list.stdout.trim().split("\n").slice(1).sort(), [f.db.dir, second].sort());
      // What `eval "$(balsam activate second)"` does, in a real shell.
      const act = await runBalsam(["activate", "second"], { env: home });
      assert.equal(act.code, 0, act.stderr);
      const shell = execFileSync("sh", ["-c", `eval "$1"; echo "$BALSAM_DB_PATH"; eval "$2"; echo "[\${BALSAM_DB_PATH-unset}]"`, "sh", act.stdout, "unset BALSAM_DB_PATH"]).toString();
      assert.equal(shell, `${second}\n[unset]\n`);
      assert.equal((await ok(["deactivate"])).stdout, "unset BALSAM_DB_PATH\n");
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
    const id = await addJob(["--name", "where", "--workflow", "CD"]);
    assert.equal((await ok(["cd", id.slice(0, 8)])).stdout.trim(), join(f.db.dir, "data", "CD", `where_${id.slice(0, 8)}`));
  });
});

describe("spawn_child and kill as 0.x's dag (issue 13 item 9)", () => {
  test("spawnChild copies its job, applies overrides, and depends on the job and its parents", async () => {
    const grand = await f.balsam.jobs.add({ name: "g", workflow: "DAG", application: "ok" });
    const me = await f.balsam.jobs.add({
      name: "me", workflow: "DAG", application: "ok", args: "--x 1", numNodes: 3, environVars: { A: "1" }, postErrorHandler: true,
      data: { keep: 1, result: 42 }, parents: [grand._id],
    });
    const kid = await f.balsam.spawnChild({ name: "kid", args: "--x 2" }, { BALSAM_JOB_ID: me._id });
    assert.equal(kid.name, "kid");
    assert.equal(kid.args, "--x 2");
    assert.equal(kid.workflow, "DAG");
    assert.equal(kid.numNodes, 3);
    assert.deepEqual(kid.environVars, { A: "1" });
    assert.equal(kid.postErrorHandler, true);
    assert.deepEqual(kid.data, { keep: 1 }, "the data is copied, not the result");
    assert.deepEqual(kid.parents, [grand._id, me._id]);
    assert.equal(kid.state, "AWAITING_PARENTS");
    assert.equal(kid.attempts, 0);
    assert.deepEqual(
      kid.stateHistory.map((h) => [h.state, h.message]).slice(0, 1),
      [["CREATED", `spawned by [me | ${me._id.slice(0, 8)}]`]],
      "0.x's provenance line (dag.py: history_line('CREATED', f'spawned by {current_job.cute_id}'))",
    );

    // jobs.kill is recursive by default, as dag.kill.
    const killed = await f.balsam.jobs.kill(me._id);
    assert.deepEqual(killed.sort(), [me._id, kid._id].sort());
    assert.equal((await f.balsam.jobs.get(kid._id)).state, "USER_KILLED");
    assert.equal((await f.balsam.jobs.get(grand._id)).state, "READY");
  });
});
