import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { exitedWithin, startLauncher } from "../support/launcher.js";
import { useCliFixture } from "../support/fixture.js";

/**
 * Selectors as a Balsam 0.x user types them (0.x matched `--name` with
 * name__icontains, `ls --wf` with workflow__icontains, ids by substring, and
 * the launcher's `--wf-filter` with workflow__contains), run as the built
 * `balsam` in a subprocess.
 */
const f = useCliFixture("selectors");

const ID = (n: number, tail: string) => `${String(n).padStart(8, "0")}-0000-4000-8000-${tail.padStart(12, "0")}`;

const ok = f.ok;

const names = f.names;

describe("0.x selectors: ls/rm --name, --wf, --id; launcher --wf-filter", () => {
  // Inside the describe, so the client is closed before the context checks for open sockets.
  before(async () => {
    await f.balsam.apps.add({ name: "noop", executable: "/bin/true" });
    await f.balsam.jobs.addMany([
      { _id: ID(1, "aaa111"), name: "myTask1", workflow: "TEST", application: "noop" },
      { _id: ID(2, "bbb222"), name: "TASKX", workflow: "test_2", application: "noop" },
      { _id: ID(3, "ccc333"), name: "other", workflow: "Prod", application: "noop" },
      { _id: ID(4, "ddd444"), name: "task.*", workflow: "TEST", application: "noop" },
    ]);
  });

  test("ls --name PART matches names containing PART in any case, literally", async () => {
    assert.deepEqual(await names(["--name", "task"]), ["TASKX", "myTask1", "task.*"]);
    assert.deepEqual(await names(["--name", "TASK."]), ["task.*"]);
    assert.deepEqual(await names(["--name", "nothing"]), []);
  });

  test("ls --wf PART matches workflows containing PART in any case; --wf-exact names one", async () => {
    assert.deepEqual(await names(["--wf", "test"]), ["TASKX", "myTask1", "task.*"]);
    assert.deepEqual(await names(["--wf", "ROD"]), ["other"]);
    assert.deepEqual(await names(["--wf-exact", "TEST"]), ["myTask1", "task.*"]);
    assert.deepEqual(await names(["--wf-exact", "test"]), []);
    const byStates = JSON.parse((await ok(["ls", "--by-states", "--wf", "test", "--json"])).stdout) as { total: number };
    assert.equal(byStates.total, 3);
    const both = await f.db.run(["ls", "--wf", "a", "--wf-exact", "b"]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /^balsam: give one of --wf and --wf-exact\n$/);
  });

  test("--id PART matches any part of the id; one job is found by any unique part, an ambiguous part is refused", async () => {
    assert.deepEqual(await names(["--id", "BBB22"]), ["TASKX"]);
    const r = await ok(["modify", "ccc3", "description", "picked by a middle part"]);
    assert.match(r.stdout, new RegExp(`^${ID(3, "ccc333")}: description = picked by a middle part`));
    assert.equal((await f.balsam.jobs.get(ID(3, "ccc333"))).description, "picked by a middle part");
    const amb = await f.db.run(["modify", "0000-4000", "description", "x"]);
    assert.equal(amb.code, 1);
    assert.match(amb.stderr, /^balsam: id '0000-4000' matches 4 jobs: /);
    assert.equal((await f.balsam.jobs.filter({ id: "0000-4000" }).list()).filter((j) => j.description === "x").length, 0, "nothing changed");
  });

  test("rm --wf PART refuses with --force when PART takes in more than the workflow named PART; --wf-exact removes that one", async () => {
    const widened = await f.db.run(["rm", "jobs", "--wf", "TEST", "--all", "--force"]);
    assert.equal(widened.code, 2);
    assert.match(widened.stderr, /^balsam: --wf TEST matches 2 workflow\(s\): TEST, test_2; refusing to remove jobs of workflows not named exactly with --force \(use --wf-exact TEST/);
    assert.equal(await f.balsam.jobs.filter({}).count(), 4, "nothing removed");
    const exact = await ok(["rm", "jobs", "--wf-exact", "TEST", "--all", "--force"]);
    assert.match(exact.stdout, /^removed 2 job\(s\)$/m);
    assert.deepEqual(await names([]), ["TASKX", "other"]);
    // Now "TEST" matches only test_2 by substring, which is not named TEST: still refused.
    assert.equal((await f.db.run(["rm", "jobs", "--wf", "TEST", "--all", "--force"])).code, 2);
    const named = await ok(["rm", "jobs", "--wf", "test_2", "--all", "--force"]);
    assert.match(named.stdout, /^removed 1 job\(s\)$/m);
    assert.deepEqual(await names([]), ["other"]);
  });

  test("rm --name PART removes names containing PART in any case", async () => {
    await f.balsam.jobs.addMany([
      { name: "Alpha", workflow: "RMN", application: "noop" },
      { name: "xALPHAx", workflow: "RMN", application: "noop" },
      { name: "beta", workflow: "RMN", application: "noop" },
    ]);
    const r = await ok(["rm", "jobs", "--name", "alpha", "--force"]);
    assert.match(r.stdout, /^removed 2 job\(s\)$/m);
    assert.deepEqual(await names(["--wf-exact", "RMN"]), ["beta"]);
  });

  test("launcher --wf-filter PART runs the jobs of every workflow containing PART, and says so in --help", async () => {
    const help = await ok(["launcher", "--help"]);
    assert.match(help.stdout, /--wf-filter <part>\s+run jobs of workflows whose name contains PART/);
    await f.balsam.jobs.addMany([
      { name: "s1", workflow: "SUB_A1", application: "noop" },
      { name: "s2", workflow: "xSUB_A2", application: "noop" },
      { name: "s3", workflow: "sub_a3", application: "noop" },
    ]);
    const l = startLauncher(["--wf-filter", "SUB_A", "--job-mode", "serial"], { ...f.db.env, BALSAM_NODELIST: "node1" });
    assert.equal(await exitedWithin(l, 60_000), 0, l.output());
    const state = async (name: string) => (await f.balsam.jobs.filter({ name }).list())[0]?.state;
    assert.equal(await state("s1"), "JOB_FINISHED");
    assert.equal(await state("s2"), "JOB_FINISHED");
    assert.equal(await state("s3"), "READY", "contains is case-sensitive, as 0.x's workflow__contains");
    assert.equal(await state("other"), "READY");
  });
});
