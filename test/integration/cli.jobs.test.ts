import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { BALSAM_BIN } from "../support/cli.js";
import { coll } from "../../libs/store/collections.js";
import { useCliFixture } from "../support/fixture.js";

/**
 * The job and app subcommands run as a user runs them: the built `balsam`
 * in a subprocess against a database directory on the test servers,
 * checked through what they print and what they leave in MongoDB and Redis.
 */
const f = useCliFixture("cli");
const { ctx } = f;


const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SEED_ARGS = "--evaluator balsam --problem polynome2.Problem --run polynome2.run";

const ok = f.ok;

/** Adds a job and returns its id, as printed on stdout. */
async function addJob(args: string[]): Promise<string> {
  const r = await ok(["job", "--yes", ...args]);
  const id = r.stdout.trim();
  assert.match(id, UUID);
  return id;
}

async function job(id: string) {
  const j = await coll(ctx.store).jobs.findOne({ _id: id });
  assert.ok(j, `job ${id} is in MongoDB`);
  return j;
}

/** A table as printed by `balsam ls`: header cells, the separator line, row cells. */
function parseTable(stdout: string): { header: string[]; separator: string; rows: string[][]; lines: string[] } {
  const lines = stdout.trimEnd().split("\n");
  const cells = (l: string) => l.split(" | ").map((c) => c.trim());
  return { header: cells(lines[0] ?? ""), separator: lines[1] ?? "", rows: lines.slice(2).map(cells), lines };
}

describe("balsam app / job / ls / modify / dep / mkchild / killjob / rm / make_dummies", () => {
  let testId = "";

  test("app adds an application; the same name twice is refused in one line", async () => {
    const r = await ok(["app", "--name", "AMBS", "--executable", "python -m ambs", "--description", "the", "search"]);
    assert.match(r.stdout, /added app AMBS/);
    const app = await coll(ctx.store).apps.findOne({ name: "AMBS" });
    assert.equal(app?.executable, "python -m ambs");
    assert.equal(app?.description, "the search");
    const dup = await f.db.run(["app", "--name", "AMBS", "--executable", "x"]);
    assert.equal(dup.code, 1);
    assert.equal(dup.stderr.trim().split("\n").length, 1);
    assert.match(dup.stderr, /^balsam: an app named 'AMBS' already exists/);
    assert.equal(await coll(ctx.store).apps.countDocuments({ name: "AMBS" }), 1);
  });

  test("the seed's own `balsam job` line: --args starting with dashes is one value", async () => {
    testId = await addJob(["--name", "test", "--application", "AMBS", "--workflow", "TEST", "--args", SEED_ARGS]);
    const j = await job(testId);
    assert.equal(j.args, SEED_ARGS);
    assert.equal(j.workflow, "TEST");
    assert.equal(j.state, "READY");
    assert.equal(await ctx.queues.has({ id: testId, workflow: "TEST", attempts: 0 }), true);
  });

  test("every job option lands in its field; a second job in the workflow is warned about", async () => {
    const r = await ok([
      "job", "--yes", "--name", "task92", "--application", "AMBS", "--workflow", "TEST",
      "--args", '{"e0": 1, "e1": 9}', "--description", "two", "words",
      "--wall-time-minutes", "5", "--num-nodes", "2", "--coschedule-num-nodes", "1", "--node-packing-count", "3",
      "--ranks-per-node", "4", "--threads-per-rank", "2", "--threads-per-core", "2", "--cpu-affinity", "depth",
      "--mpi-flags", "-x FOO", "--env", "A=1", "B=x=y", "--input-files", "in*", "--url-in", "file:///in",
      "--url-out", "file:///out", "--stage-out-files", "out*", "--post-handle-error", "--post-handle-timeout",
      "--disable-auto-timeout-retry",
    ]);
    assert.match(r.stderr, /workflow TEST already has jobs/);
    const j = await job(r.stdout.trim());
    assert.deepEqual(
      {
        args: j.args, description: j.description, wallTimeMinutes: j.wallTimeMinutes, numNodes: j.numNodes,
        coscheduleNumNodes: j.coscheduleNumNodes, nodePackingCount: j.nodePackingCount, ranksPerNode: j.ranksPerNode,
        threadsPerRank: j.threadsPerRank, threadsPerCore: j.threadsPerCore, cpuAffinity: j.cpuAffinity, mpiFlags: j.mpiFlags,
        environVars: j.environVars, inputFiles: j.inputFiles, stageInUrl: j.stageInUrl, stageOutUrl: j.stageOutUrl,
        stageOutFiles: j.stageOutFiles, postErrorHandler: j.postErrorHandler, postTimeoutHandler: j.postTimeoutHandler,
        autoTimeoutRetry: j.autoTimeoutRetry,
      },
      {
        args: '{"e0": 1, "e1": 9}', description: "two words", wallTimeMinutes: 5, numNodes: 2, coscheduleNumNodes: 1,
        nodePackingCount: 3, ranksPerNode: 4, threadsPerRank: 2, threadsPerCore: 2, cpuAffinity: "depth", mpiFlags: "-x FOO",
        environVars: { A: "1", B: "x=y" }, inputFiles: "in*", stageInUrl: "file:///in", stageOutUrl: "file:///out",
        stageOutFiles: "out*", postErrorHandler: true, postTimeoutHandler: true, autoTimeoutRetry: false,
      },
    );
  });

  test("BALSAM_LS_FIELDS=num_nodes:args balsam ls --wf TEST: header, separator, aligned rows in creation order", async () => {
    await addJob(["--name", "task93", "--application", "AMBS", "--workflow", "TEST", "--args", '{"e0": 5}']);
    await addJob(["--name", "task93", "--application", "AMBS", "--workflow", "OTHER"]);
    const r = await ok(["ls", "--wf", "TEST"], { BALSAM_LS_FIELDS: "num_nodes:args" });
    const t = parseTable(r.stdout);
    assert.deepEqual(t.header, ["job_id", "name", "workflow", "application", "state", "num_nodes", "args"]);
    assert.match(t.separator, /^-+$/);
    assert.deepEqual(
      t.rows.map((row) => row.slice(1)),
      [
        ["test", "TEST", "AMBS", "READY", "1", SEED_ARGS],
        ["task92", "TEST", "AMBS", "READY", "2", '{"e0": 1, "e1": 9}'],
        ["task93", "TEST", "AMBS", "READY", "1", '{"e0": 5}'],
      ],
    );
    assert.equal(t.rows[0]?.[0], testId);
    // Aligned: every row puts its column separators where the header does.
    const seps = (l: string) => [...l.matchAll(/ \| /g)].map((m) => m.index).slice(0, 6);
    for (const l of [t.lines[0] ?? "", ...t.lines.slice(2)]) assert.deepEqual(seps(l), seps(t.lines[0] ?? ""));
  });

  test("ls --json, apps, wf, --by-states, --history, --verbose and BALSAM_LS_LIMIT", async () => {
    const js = JSON.parse((await ok(["ls", "--wf", "TEST", "--json"], { BALSAM_LS_FIELDS: "num_nodes" })).stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(js.map((j) => [j.name, j.num_nodes]), [["test", 1], ["task92", 2], ["task93", 1]]);
    assert.deepEqual(Object.keys(js[0] ?? {}), ["job_id", "name", "workflow", "application", "state", "num_nodes"]);

    const apps = parseTable((await ok(["ls", "apps"])).stdout);
    assert.deepEqual(apps.header, ["name", "executable", "description"]);
    assert.deepEqual(apps.rows, [["AMBS", "python -m ambs", "the search"]]);

    const wf = parseTable((await ok(["ls", "wf"])).stdout);
    assert.deepEqual(wf.header, ["workflow", "total", "READY"]);
    assert.deepEqual(wf.rows, [["OTHER", "1", "1"], ["TEST", "3", "3"]]);
    assert.deepEqual(JSON.parse((await ok(["ls", "wf", "--json"])).stdout), [
      { workflow: "OTHER", total: 1, states: { READY: 1 } },
      { workflow: "TEST", total: 3, states: { READY: 3 } },
    ]);

    const bs = parseTable((await ok(["ls", "--by-states"])).stdout);
    assert.deepEqual(bs.rows, [["READY", "4"], ["total", "4"]]);
    assert.deepEqual(JSON.parse((await ok(["ls", "--by-states", "--wf", "TEST", "--json"])).stdout), { total: 3, states: { READY: 3 } });

    const hist = (await ok(["ls", "--history", "--name", "test"])).stdout.trim().split("\n");
    assert.equal(hist[0], `${testId} | test | TEST | READY`);
    assert.match(hist[1] ?? "", /^ {2}\d{4}-\d\d-\d\dT[\d:.]+Z {2}CREATED$/);
    assert.match(hist[2] ?? "", /^ {2}\d{4}-\d\d-\d\dT[\d:.]+Z {2}READY$/);
    const hj = JSON.parse((await ok(["ls", "--history", "--name", "test", "--json"])).stdout) as Array<{ state_history: Array<{ state: string }> }>;
    assert.deepEqual(hj[0]?.state_history.map((h) => h.state), ["CREATED", "READY"]);

    const verbose = (await ok(["ls", "--verbose", "--name", "test"])).stdout;
    assert.match(verbose, /^wall_time_minutes +: 1$/m);
    assert.match(verbose, /^auto_timeout_retry +: true$/m);

    const limited = await ok(["ls"], { BALSAM_LS_LIMIT: "2" });
    assert.equal(parseTable(limited.stdout).rows.length, 2);
    assert.match(limited.stderr, /showing 2 jobs; more match/);
  });

  describe("dependencies", () => {
    let parent = "";
    let child = "";
    let grandchild = "";

    test("dep takes unique id prefixes; the child waits for its parent", async () => {
      parent = await addJob(["--name", "parent", "--application", "AMBS", "--workflow", "DAG"]);
      child = await addJob(["--name", "child", "--application", "AMBS", "--workflow", "DAG"]);
      const r = await ok(["dep", parent.slice(0, 13), child.slice(0, 13)]);
      assert.equal(r.stdout.trim(), `${parent} -> ${child} (child is AWAITING_PARENTS)`);
      const c = await job(child);
      assert.deepEqual(c.parents, [parent]);
      assert.equal(c.state, "AWAITING_PARENTS");
      assert.equal(await ctx.queues.has({ id: child, workflow: "DAG", attempts: 0 }), false);
    });

    test("mkchild: the parent from BALSAM_JOB_ID, its workflow by default; --parent and --workflow", async () => {
      const r = await ok(["mkchild", "--yes", "--name", "grandchild", "--application", "AMBS", "--args", "-n 3"], { BALSAM_JOB_ID: child });
      grandchild = r.stdout.trim();
      assert.match(grandchild, UUID);
      assert.doesNotMatch(r.stderr, /already has jobs/); // joining the parent's workflow is the point
      const g = await job(grandchild);
      assert.deepEqual([g.parents, g.workflow, g.state, g.args], [[child], "DAG", "AWAITING_PARENTS", "-n 3"]);

      const other = (await ok(["mkchild", "--parent", parent.slice(0, 10), "--workflow", "DAG2", "--name", "side", "--application", "AMBS"])).stdout.trim();
      const s = await job(other);
      assert.deepEqual([s.parents, s.workflow], [[parent], "DAG2"]);
    });

    test("ls --tree draws children under their parents; --json nests them", async () => {
      const lines = (await ok(["ls", "--tree", "--wf-exact", "DAG"])).stdout.trimEnd().split("\n");
      assert.deepEqual(lines, [
        `parent [READY] ${parent}`,
        `└── child [AWAITING_PARENTS] ${child}`,
        `    └── grandchild [AWAITING_PARENTS] ${grandchild}`,
      ]);
      const tree = JSON.parse((await ok(["ls", "--tree", "--wf-exact", "DAG", "--json"])).stdout) as Array<{ name: string; children: Array<{ name: string; children: Array<{ name: string }> }> }>;
      assert.equal(tree.length, 1);
      assert.equal(tree[0]?.children[0]?.children[0]?.name, "grandchild");
    });

    test("ls --tree draws a diamond's shared child in full once", async () => {
      const top = await addJob(["--name", "top", "--application", "AMBS", "--workflow", "DIAMOND"]);
      const left = (await ok(["mkchild", "--parent", top, "--name", "left", "--application", "AMBS"])).stdout.trim();
      const right = (await ok(["mkchild", "--parent", top, "--name", "right", "--application", "AMBS"])).stdout.trim();
      const bottom = (await ok(["mkchild", "--parent", left, "--name", "bottom", "--application", "AMBS"])).stdout.trim();
      await ok(["dep", right, bottom]);
      const lines = (await ok(["ls", "--tree", "--wf", "DIAMOND"])).stdout.trimEnd().split("\n");
      assert.deepEqual(lines, [
        `top [READY] ${top}`,
        `├── left [AWAITING_PARENTS] ${left}`,
        `│   └── bottom [AWAITING_PARENTS] ${bottom}`,
        `└── right [AWAITING_PARENTS] ${right}`,
        `    └── bottom [AWAITING_PARENTS] ${bottom} (shown above)`,
      ]);
    });

    test("modify: typed values, a state change through the transition table, apps", async () => {
      assert.equal((await ok(["modify", child, "num_nodes", "4"])).stdout.trim(), `${child}: num_nodes = 4`);
      await ok(["modify", child, "auto_timeout_retry", "false"]);
      await ok(["modify", child, "environ_vars", "X=1:Y=2"]);
      await ok(["modify", child, "args", "--", "--flag value"]);
      let c = await job(child);
      assert.deepEqual([c.numNodes, c.autoTimeoutRetry, c.environVars, c.args], [4, false, { X: "1", Y: "2" }, "--flag value"]);

      const r = await ok(["modify", child.slice(0, 8), "state", "READY"]);
      assert.equal(r.stdout.trim(), `${child}: state AWAITING_PARENTS -> READY`);
      c = await job(child);
      assert.equal(c.state, "READY");
      assert.deepEqual(c.stateHistory.at(-1)?.state, "READY");
      assert.equal(c.stateHistory.at(-1)?.message, "set by balsam modify");
      assert.equal(await ctx.queues.has({ id: child, workflow: "DAG", attempts: 0 }), true);

      await ok(["modify", "AMBS", "executable", "python3 -m ambs", "--type", "apps"]);
      assert.equal((await coll(ctx.store).apps.findOne({ name: "AMBS" }))?.executable, "python3 -m ambs");
    });

    test("killjob --recursive kills a job and everything below it, keeping them in the DB", async () => {
      const r = await ok(["killjob", "--id", child.slice(0, 12), "--recursive"]);
      assert.deepEqual(r.stdout.trim().split("\n").sort(), [child, grandchild].sort());
      for (const id of [child, grandchild]) assert.equal((await job(id)).state, "USER_KILLED");
      assert.equal((await job(parent)).state, "READY");
      assert.equal(await ctx.queues.has({ id: child, workflow: "DAG", attempts: 0 }), false);
    });

    test("rm of a parent reports the children left waiting; --recursive removes them too", async () => {
      const p2 = await addJob(["--name", "p2", "--application", "AMBS", "--workflow", "RMDAG"]);
      const kid = (await ok(["mkchild", "--parent", p2, "--name", "kid", "--application", "AMBS"])).stdout.trim();
      const r = await ok(["rm", "jobs", "--id", p2, "--force"]);
      assert.equal(r.stdout.trim(), "removed 1 job(s)");
      assert.match(r.stderr, new RegExp(`1 job\\(s\\) are left waiting on removed parents: ${kid}`));
      assert.equal((await job(kid)).state, "AWAITING_PARENTS");

      const p3 = await addJob(["--name", "p3", "--application", "AMBS", "--workflow", "RMDAG"]);
      const k3 = (await ok(["mkchild", "--parent", p3, "--name", "k3", "--application", "AMBS"])).stdout.trim();
      const k4 = (await ok(["mkchild", "--parent", k3, "--name", "k4", "--application", "AMBS"])).stdout.trim();
      assert.equal((await ok(["rm", "jobs", "--name", "p3", "--recursive", "--force"])).stdout.trim(), "removed 3 job(s)");
      assert.equal(await coll(ctx.store).jobs.countDocuments({ _id: { $in: [p3, k3, k4] } }), 0);
    });
  });

  test("balsam rm jobs --name task --wf TEST --force leaves other workflows' task jobs", async () => {
    const pendingBefore = await ctx.queues.pending("TEST");
    const r = await ok(["rm", "jobs", "--name", "task", "--wf", "TEST", "--force"]);
    assert.equal(r.stdout.trim(), "removed 2 job(s)");
    assert.deepEqual((await coll(ctx.store).jobs.find({ workflow: "TEST" }).toArray()).map((j) => j.name), ["test"]);
    assert.deepEqual((await coll(ctx.store).jobs.find({ name: { $regex: "task" } }).toArray()).map((j) => j.workflow), ["OTHER"]);
    assert.equal(await ctx.queues.pending("TEST"), pendingBefore - 2);
    const none = await ok(["rm", "jobs", "--name", "task", "--wf", "TEST", "--force"]);
    assert.match(none.stdout, /no jobs match; nothing removed/);
  });

  test("job --env and modify environ_vars follow one rule: ',' or ':' starts an entry only before VAR=", async () => {
    const id = await addJob(["--name", "envs", "--application", "AMBS", "--workflow", "ENV", "--env", "A=1,B=2", "CUDA_VISIBLE_DEVICES=0,1"]);
    assert.deepEqual((await job(id)).environVars, { A: "1", B: "2", CUDA_VISIBLE_DEVICES: "0,1" });
    assert.equal((await ok(["modify", id, "environ_vars", "PATH=/usr/bin:/bin,A=3"])).stdout.trim(), `${id}: environ_vars = PATH=/usr/bin:/bin:A=3`);
    assert.deepEqual((await job(id)).environVars, { PATH: "/usr/bin:/bin", A: "3" });
    // What `ls` shows goes back in unchanged.
    const shown = parseTable((await ok(["ls", "--id", id], { BALSAM_LS_FIELDS: "environ_vars" })).stdout).rows[0]?.[5] ?? "";
    await ok(["modify", id, "environ_vars", shown]);
    assert.deepEqual((await job(id)).environVars, { PATH: "/usr/bin:/bin", A: "3" });
  });

  test("rm refuses a job a launcher is running unless --force, naming it", async () => {
    const id = await addJob(["--name", "busy", "--application", "AMBS", "--workflow", "BUSY"]);
    await coll(ctx.store).jobs.updateOne({ _id: id }, { $set: { state: "RUNNING", lock: { owner: "test-launcher", until: new Date(Date.now() + 3_600_000) } } });
    const refused = await f.db.run(["rm", "jobs", "--wf", "BUSY", "--all"]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`^balsam: 1 of the job\\(s\\) to remove is running: busy \\(${id}\\) \\(stop them first with \`balsam killjob --id ID\``));
    assert.equal(await coll(ctx.store).jobs.countDocuments({ _id: id }), 1);
    assert.equal((await ok(["rm", "jobs", "--wf", "BUSY", "--all", "--force"])).stdout.trim(), "removed 1 job(s)");
    assert.equal(await coll(ctx.store).jobs.countDocuments({ _id: id }), 0);
  });

  test("make_dummies adds N jobs in bulk and the dummy app; no progress bar off a terminal", async () => {
    const r = await ok(["make_dummies", "25", "--wf", "DUM"]);
    assert.equal(r.stdout.trim(), "added 25 dummy job(s) to workflow DUM");
    assert.equal(r.stderr, "");
    assert.equal(await coll(ctx.store).jobs.countDocuments({ workflow: "DUM", application: "dummy", state: "READY" }), 25);
    assert.equal((await coll(ctx.store).apps.findOne({ name: "dummy" }))?.executable, "/bin/true");
    // Added together: chunks of 8 share an entry (8, 8, 8, and the 25th alone).
    assert.equal(await ctx.queues.pending("DUM"), 4);
    await ok(["make_dummies", "5", "--wf", "DUM"]); // the app exists now: reused, not an error
    assert.equal(await coll(ctx.store).jobs.countDocuments({ workflow: "DUM" }), 30);
    const names = parseTable((await ok(["ls", "--wf", "DUM"], { BALSAM_LS_LIMIT: "3" })).stdout).rows.map((row) => row[1]);
    assert.deepEqual(names, ["dummy0", "dummy1", "dummy2"]);
    // A reader that stops early (`| head`; here `| true`, gone before the first write) ends the listing quietly.
    const piped = spawnSync("bash", ["-c", `"${process.execPath}" "${BALSAM_BIN}" ls --wf DUM | true; echo "\${PIPESTATUS[0]}"`], {
      env: { ...process.env, ...f.db.env },
      encoding: "utf8",
    });
    assert.equal(piped.stdout.trim(), "0", piped.stderr);
    assert.equal(piped.stderr, "");
  });

  test("rm apps and rm jobs --wf W --all", async () => {
    const r = await ok(["rm", "jobs", "--wf", "DUM", "--all", "--force"]);
    assert.equal(r.stdout.trim(), "removed 30 job(s)");
    assert.equal(await ctx.queues.pending("DUM"), 0);
    const a = await ok(["rm", "apps", "--name", "dummy", "--force"]);
    assert.equal(a.stdout.trim(), "removed 1 app(s): dummy");
    assert.equal(await coll(ctx.store).apps.countDocuments({ name: "dummy" }), 0);
    assert.equal(await coll(ctx.store).apps.countDocuments({ name: "AMBS" }), 1);
  });
});
