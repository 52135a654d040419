import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { useCliFixture } from "../support/fixture.js";
import { exitedWithin, startLauncher } from "../support/launcher.js";
import type { Job } from "../../libs/client/index.js";

/**
 * Tags (Balsam 2's `tags`, string → string) as a user types them: `--tag
 * K=V` on job/mkchild/make_dummies, the `--tag` selector of ls, rm, rerun,
 * killjob, modify and the launcher, and bad tag syntax refused with one
 * line, exit 2 and nothing changed. The built `balsam`, as a subprocess.
 */
const f = useCliFixture("tags");
/** Inside each describe's `before`, which runs after the fixture's. */
async function noopApp(): Promise<void> {
  if (!(await f.balsam.apps.find("noop"))) await f.balsam.apps.add({ name: "noop", executable: "/bin/true" });
}

const ok = f.ok;

const names = f.names;

async function all(): Promise<Job[]> {
  return f.balsam.jobs.filter({}).list();
}

async function add(name: string, workflow: string, tags: string[]): Promise<string> {
  const r = await ok(["job", "--name", name, "--workflow", workflow, "--application", "noop", "--yes", ...tags.flatMap((t) => ["--tag", t])]);
  return r.stdout.trim();
}

describe("tags: --tag on job/mkchild/make_dummies and as a selector", () => {
  before(noopApp);
  test("job, mkchild and make_dummies store tags; ls --tag selects by all given tags; the tags column shows them", async () => {
    const a = await add("a", "T1", ["run=B", "gen=3"]);
    await add("b", "T1", ["run=B", "gen=4"]);
    await add("c", "T2", ["run=C", "gen=3"]);
    await add("d", "T2", []);
    const child = (await ok(["mkchild", "--parent", a, "--name", "a-child", "--application", "noop", "--yes", "--tag", "run=B", "--tag", "gen=3", "--tag", "kind=child"])).stdout.trim();
    await ok(["make_dummies", "3", "--wf", "DUM", "--tag", "run=D", "--tag", "note=x=y"]);
    const jobs = await all();
    assert.deepEqual(jobs.find((j) => j._id === a)?.tags, { run: "B", gen: "3" });
    assert.deepEqual(jobs.find((j) => j._id === child)?.tags, { run: "B", gen: "3", kind: "child" });
    assert.deepEqual(jobs.find((j) => j.name === "dummy0")?.tags, { run: "D", note: "x=y" }, "a value may hold '='");
    assert.deepEqual(jobs.find((j) => j.name === "d")?.tags, {});

    assert.deepEqual(await names(["--tag", "run=B"]), ["a", "a-child", "b"]);
    assert.deepEqual(await names(["--tag", "run=B", "--tag", "gen=3"]), ["a", "a-child"]);
    assert.deepEqual(await names(["--tag", "gen=3"]), ["a", "a-child", "c"]);
    assert.deepEqual(await names(["--tag", "gen=3", "--wf", "T2"]), ["c"]);
    assert.deepEqual(await names(["--tag", "run=b"]), [], "values match exactly");
    assert.deepEqual(await names(["--tag", "note=x=y"]), ["dummy0", "dummy1", "dummy2"]);
    const byStates = JSON.parse((await ok(["ls", "--by-states", "--tag", "run=D", "--json"])).stdout) as { total: number };
    assert.equal(byStates.total, 3);
    const table = await ok(["ls", "--tag", "kind=child"]);
    assert.match(table.stdout, /a-child/);
    const withColumn = await f.db.run(["ls", "--tag", "kind=child"], { env: { BALSAM_LS_FIELDS: "tags" } });
    assert.match(withColumn.stdout, /gen=3,kind=child,run=B/);
  });

  test("bad tag syntax: one clear line, exit 2, nothing changed — on every command that takes --tag", async () => {
    const before = await all();
    const cases: Array<[string[], RegExp]> = [
      [["job", "--name", "bad", "--workflow", "T1", "--application", "noop", "--yes", "--tag", "nokey"], /^balsam: --tag takes KEY=VALUE, not 'nokey'\n$/],
      [["job", "--name", "bad", "--workflow", "T1", "--application", "noop", "--yes", "--tag", "=v"], /^balsam: --tag takes KEY=VALUE, not '=v'\n$/],
      [["job", "--name", "bad", "--workflow", "T1", "--application", "noop", "--yes", "--tag", "a b=c"], /^balsam: tag key 'a b' must be letters, digits/],
      [["job", "--name", "bad", "--workflow", "T1", "--application", "noop", "--yes", "--tag", "k=1", "--tag", "k=2"], /^balsam: --tag k given twice \(1 and 2\)\n$/],
      [["mkchild", "--parent", "0000", "--name", "bad", "--application", "noop", "--yes", "--tag", "x"], /^balsam: --tag takes KEY=VALUE, not 'x'\n$/],
      [["make_dummies", "5", "--tag", "x"], /^balsam: --tag takes KEY=VALUE, not 'x'\n$/],
      [["ls", "--tag", "x"], /^balsam: --tag takes KEY=VALUE, not 'x'\n$/],
      [["ls", "apps", "--tag", "a=b"], /^balsam: --wf, --state and --tag select jobs, not apps\n$/],
      [["rm", "jobs", "--tag", "x", "--force"], /^balsam: --tag takes KEY=VALUE, not 'x'\n$/],
      [["rerun", "--tag", "x"], /^balsam: --tag takes KEY=VALUE, not 'x'\n$/],
      [["killjob", "--tag", "x"], /^balsam: --tag takes KEY=VALUE, not 'x'\n$/],
      [["modify", "--tag", "x", "description", "y"], /^balsam: --tag takes KEY=VALUE, not 'x'\n$/],
      [["modify", "--tag", "run=B", "tags", "oops"], /^balsam: --tag takes KEY=VALUE, not 'oops'\n$/],
      [["launcher", "--consume-all", "--job-mode", "serial", "--tag", "x"], /^balsam: --tag takes KEY=VALUE, not 'x'\n$/],
      [["submit-launch", "-n", "1", "-q", "debug", "-t", "5", "-A", "p", "--job-mode", "serial", "--tag", "x"], /^balsam: --tag takes KEY=VALUE, not 'x'\n$/],
    ];
    for (const [args, want] of cases) {
      const r = await f.db.run(args);
      assert.equal(r.code, 2, `balsam ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, want, `balsam ${args.join(" ")}`);
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, `one line: ${r.stderr}`);
    }
    const after = await all();
    assert.deepEqual(
      after.map((j) => [j._id, j.state, j.updatedAt.getTime()]).sort(),
      before.map((j) => [j._id, j.state, j.updatedAt.getTime()]).sort(),
      "nothing changed",
    );
  });

  test("modify --tag sets a field (or the tags themselves) on every matching job, and by id too", async () => {
    const r = await ok(["modify", "--tag", "run=B", "--tag", "gen=3", "description", "gen 3 of B"]);
    assert.match(r.stdout, /^modified 2 job\(s\): description = gen 3 of B/);
    const jobs = await all();
    assert.deepEqual(jobs.filter((j) => j.description === "gen 3 of B").map((j) => j.name).sort(), ["a", "a-child"]);
    const d = jobs.find((j) => j.name === "d")!;
    await ok(["modify", d._id, "tags", "run=B,gen=5"]);
    assert.deepEqual(await names(["--tag", "gen=5"]), ["d"], "changed tags are found through the index form too");
    const none = await ok(["modify", "--tag", "run=nothing", "description", "x"]);
    assert.match(none.stderr, /no jobs match; nothing modified/);
    const both = await f.db.run(["modify", d._id, "--tag", "run=B", "description", "x"]);
    assert.equal(both.code, 2);
  });

  test("killjob --tag kills the matching unfinished jobs; rerun --tag runs them again; rm --tag removes only them", async () => {
    const k = await ok(["killjob", "--tag", "run=C"]);
    const c = (await all()).find((j) => j.name === "c")!;
    assert.deepEqual(k.stdout.trim().split("\n"), [c._id]);
    assert.equal((await f.balsam.jobs.get(c._id)).state, "USER_KILLED");
    assert.equal((await f.balsam.jobs.get((await all()).find((j) => j.name === "a")!._id)).state, "READY", "others untouched");
    const again = await ok(["killjob", "--tag", "run=C"]);
    assert.match(again.stderr, /nothing to kill/);

    const rr = await ok(["rerun", "--tag", "run=C"]);
    assert.match(rr.stdout, /^rerun 1 job\(s\)/);
    assert.equal((await f.balsam.jobs.get(c._id)).state, "READY");

    const rm = await ok(["rm", "jobs", "--tag", "run=D", "--force"]);
    assert.match(rm.stdout, /removed 3 job\(s\)/);
    assert.deepEqual(await names(["--wf", "DUM"]), []);
    assert.equal((await all()).length, 5);
  });
});

describe("launcher --tag", () => {
  before(noopApp);
  test("a tagged launcher runs only matching jobs and leaves the others queued; an untagged launcher then runs them", async () => {
    await f.balsam.jobs.addMany([
      ...Array.from({ length: 6 }, (_, i) => ({ name: `hit${i}`, workflow: "LT", application: "noop", tags: { group: "g1", n: String(i) } })),
      ...Array.from({ length: 6 }, (_, i) => ({ name: `miss${i}`, workflow: "LT", application: "noop", tags: { group: "g2" } })),
      ...Array.from({ length: 3 }, (_, i) => ({ name: `plain${i}`, workflow: "LT", application: "noop" })),
    ]);
    const tagged = startLauncher(["--wf-exact", "LT", "--job-mode", "serial", "--tag", "group=g1"], { ...f.db.env, BALSAM_NODELIST: "node1" });
    assert.equal(await exitedWithin(tagged, 180_000), 0, tagged.output());
    assert.match(tagged.output(), /nothing left to run/);
    const lt = await f.balsam.jobs.filter({ workflow: "LT" }).list();
    const state = (prefix: string) => [...new Set(lt.filter((j) => j.name.startsWith(prefix)).map((j) => j.state))];
    assert.deepEqual(state("hit"), ["JOB_FINISHED"]);
    assert.deepEqual(state("miss"), ["READY"], "not taken");
    assert.deepEqual(state("plain"), ["READY"], "an untagged job is not a tagged launcher's either");
    // Not lost: still in the queue (waiting or given back with a delay): the misses' entries, and the plain jobs' chunk.
    assert.equal(await f.balsam.queues.pending("LT"), 6 + 1);

    const plain = startLauncher(["--wf-exact", "LT", "--job-mode", "serial"], { ...f.db.env, BALSAM_NODELIST: "node1" });
    assert.equal(await exitedWithin(plain, 180_000), 0, plain.output());
    const done = await f.balsam.jobs.filter({ workflow: "LT" }).list();
    assert.deepEqual([...new Set(done.map((j) => j.state))], ["JOB_FINISHED"]);
  });

  test("side by side on one queue: the tagged launcher runs no other job, and every job runs once", async () => {
    await f.balsam.jobs.addMany([
      ...Array.from({ length: 20 }, (_, i) => ({ name: `s-hit${i}`, workflow: "LS", application: "noop", tags: { group: "g1" } })),
      ...Array.from({ length: 20 }, (_, i) => ({ name: `s-miss${i}`, workflow: "LS", application: "noop", tags: { group: "g2" } })),
    ]);
    const env = { ...f.db.env, BALSAM_NODELIST: "node1" };
    const tagged = startLauncher(["--wf-exact", "LS", "--job-mode", "serial", "--tag", "group=g1"], env);
    const plain = startLauncher(["--wf-exact", "LS", "--job-mode", "serial"], env);
    assert.equal(await exitedWithin(tagged, 180_000), 0, tagged.output());
    assert.equal(await exitedWithin(plain, 180_000), 0, plain.output());
    const jobs = await f.balsam.jobs.filter({ workflow: "LS" }).list();
    assert.deepEqual([...new Set(jobs.map((j) => j.state))], ["JOB_FINISHED"], "none lost or starved");
    const by = (pid: number | undefined) => jobs.filter((j) => j.stateHistory.some((h) => h.message.includes(`:${pid}:`)));
    const ranByTagged = by(tagged.child.pid);
    assert.ok(ranByTagged.every((j) => j.tags.group === "g1"), `the tagged launcher ran ${ranByTagged.filter((j) => j.tags.group !== "g1").map((j) => j.name).join(", ")}`);
    assert.equal(by(plain.child.pid).length + ranByTagged.length, 40, "each job ran once, by one of them");
    for (const j of jobs) assert.equal(j.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1);
  });
});
