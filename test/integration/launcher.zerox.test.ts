import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { useCliFixture } from "../support/fixture.js";
import { BALSAM_BIN, runBalsam } from "../support/cli.js";

/**
 * What Balsam 0.x's launcher gave a job, from the user's side (issue 13
 * items 5–8): the job's environment, GPUs and cores of packed jobs, handler
 * flags and script logs, scripts setting their own job's state, the tail of
 * a failed run's output, envscripts under mpirun, and multi-rank jobs left
 * to mpi launchers.
 */
const f = useCliFixture("zerox-launch");
const { script } = f;
const launch = (wf: string, mode: "serial" | "mpi", args: string[] = [], env: NodeJS.ProcessEnv = {}) => f.launch(wf, { mode, args, env });

describe("a Balsam 0.x job's view of its launcher", () => {
  test("the job's environment: parents as a JSON list, node count, mode, threads; its own GPU and cores per packed job", async () => {
    const env = script("env.sh", 'echo "BALSAM-RESULT: {\\"parents\\": $BALSAM_PARENT_IDS, \\"nodes\\": \\"$BALSAM_LAUNCHER_NODES\\", \\"mode\\": \\"$BALSAM_JOB_MODE\\", \\"omp\\": \\"$OMP_NUM_THREADS\\", \\"gpu\\": \\"$CUDA_VISIBLE_DEVICES\\", \\"order\\": \\"$CUDA_DEVICE_ORDER\\", \\"cpus\\": \\"$(grep Cpus_allowed_list /proc/self/status | cut -f2)\\"}"');
    await f.balsam.apps.add({ name: "env", executable: env });
    const parent = await f.balsam.jobs.add({ name: "p", workflow: "ENVX", application: "env" });
    await launch("ENVX", "serial");
    const kids = await f.balsam.jobs.addMany(
      Array.from({ length: 4 }, (_, i) => ({ name: `k${i}`, workflow: "ENVX", application: "env", parents: [parent._id], threadsPerRank: 3, nodePackingCount: 2, cpuAffinity: "depth" as const, gpusPerRank: 1 })),
    );
    await launch("ENVX", "serial", ["--gpus-per-node", "2"], { BALSAM_CORES_PER_NODE: "2" });
    const seen = await Promise.all(kids.map(async (k) => (await f.balsam.jobs.get(k._id)).data.result as Record<string, unknown>));
    for (const r of seen) {
      assert.deepEqual(r.parents, [parent._id]);
      assert.equal(r.nodes, "1");
      assert.equal(r.mode, "serial");
      assert.equal(r.omp, "3");
      assert.equal(r.order, "PCI_BUS_ID");
    }
    // One device of the node's each (issue 26: no longer round robin, which let two packed jobs share one).
    for (const r of seen) assert.ok(["0", "1"].includes(r.gpu as string), JSON.stringify(seen));
    // Two packed jobs per node of two cores: one core each.
    assert.deepEqual([...new Set(seen.map((r) => r.cpus))].sort(), ["0", "1"], JSON.stringify(seen));
    const pr = (await f.balsam.jobs.get(parent._id)).data.result as Record<string, unknown>;
    assert.deepEqual([pr.parents, pr.omp, pr.gpu, pr.order], [[], "1", "", ""]);
  });

  test("handlers: BALSAM_JOB_ERROR=TRUE, output in postprocess.log under 0.x's header; the state it sets stands; RUN_ERROR shows the tail of the output", async () => {
    const fix = `"${process.execPath}" "${BALSAM_BIN}" modify "$BALSAM_JOB_ID" state JOB_FINISHED > /dev/null`;
    const post = script("post.sh", `echo "error=$BALSAM_JOB_ERROR timeout=$BALSAM_JOB_TIMEOUT state=$BALSAM_JOB_STATE"; ${fix}`);
    await f.balsam.apps.add({ name: "boom", executable: script("boom.sh", "echo line one; echo line two; echo boom; exit 3"), postprocess: post });
    const handled = await f.balsam.jobs.add({ name: "handled", workflow: "HANDLE", application: "boom", postErrorHandler: true });
    await f.balsam.apps.add({ name: "boom2", executable: script("boom2.sh", "echo first; echo last words; exit 3") });
    const plain = await f.balsam.jobs.add({ name: "plain", workflow: "HANDLE", application: "boom2" });
    await launch("HANDLE", "serial");
    const h = await f.balsam.jobs.get(handled._id);
    assert.equal(h.state, "JOB_FINISHED", JSON.stringify(h.stateHistory));
    assert.equal(h.stateHistory.filter((x) => x.state === "JOB_FINISHED").length, 1);
    const postLog = readFileSync(join(h.workdir, "postprocess.log"), "utf8");
    assert.match(postLog, /^# balsam: running .*post\.sh\n# Invoked to handle RUN_ERROR\n/);
    assert.equal(postLog.split("\n").filter((l) => !l.startsWith("#")).join("").trim(), "error=TRUE timeout= state=RUN_ERROR");
    assert.doesNotMatch(readFileSync(join(h.workdir, "handled.out"), "utf8"), /error=TRUE/);
    const p = await f.balsam.jobs.get(plain._id);
    assert.equal(p.state, "FAILED");
    const runError = p.stateHistory.find((x) => x.state === "RUN_ERROR")!;
    assert.equal(runError.message, "exit code 3; output ends: first | last words");
    const ls = await runBalsam(["ls", "--history", "--id", p._id], { env: f.db.env });
    assert.match(ls.stdout, /last words/);
  });

  test("a postprocess script edits its own job and sets its state through the CLI, and both are kept", async () => {
    const balsamCmd = `"${process.execPath}" "${BALSAM_BIN}"`;
    const post = script("judge.sh", `${balsamCmd} modify "$BALSAM_JOB_ID" description judged >> judged.txt 2>&1; ${balsamCmd} modify "$BALSAM_JOB_ID" state FAILED >> judged.txt 2>&1; echo "exit $?" >> judged.txt`);
    await f.balsam.apps.add({ name: "judged", executable: "/bin/true", postprocess: post });
    const j = await f.balsam.jobs.add({ name: "judged", workflow: "JUDGE", application: "judged" });
    const out = await launch("JUDGE", "serial");
    const doc = await f.balsam.jobs.get(j._id);
    assert.equal(doc.state, "FAILED", `${JSON.stringify(doc.stateHistory)}\n${readFileSync(join(doc.workdir, "judged.txt"), "utf8")}\n${out}`);
    assert.equal(doc.lock, null);
    assert.equal(doc.description, "judged", "a field edited by the job's own script, under its launcher's lease");
    assert.ok(!doc.stateHistory.some((h) => h.state === "JOB_FINISHED"));
  });

  test("mpi mode: an app's envscript is sourced, then mpirun runs the ranks; a serial launcher leaves a multi-rank job to it", async () => {
    const envscript = join(f.dir, "env.rc");
    writeFileSync(envscript, "export FROM_ENVSCRIPT=yes\n");
    await f.balsam.apps.add({ name: "ranks", executable: script("ranks.sh", 'echo "rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE env=$FROM_ENVSCRIPT"'), envscript });
    const j = await f.balsam.jobs.add({ name: "ranks", workflow: "RANKS", application: "ranks", ranksPerNode: 2 });
    const serialOut = await launch("RANKS", "serial");
    assert.match(serialOut, /needs 2 ranks: serial launchers run single-process jobs/);
    assert.equal((await f.balsam.jobs.get(j._id)).state, "READY");
    await launch("RANKS", "mpi");
    const doc = await f.balsam.jobs.get(j._id);
    assert.equal(doc.state, "JOB_FINISHED", JSON.stringify(doc.stateHistory));
    const lines = readFileSync(join(doc.workdir, "ranks.out"), "utf8").split("\n").filter((l) => l.startsWith("rank")).sort();
    assert.deepEqual(lines, ["rank 0 of 2 env=yes", "rank 1 of 2 env=yes"]);
  });

  test("a run that fails fast (exit 1 within 20 s) is retried up to --fast-fail-retries times, as 0.x did", async () => {
    const log = join(f.dir, "flaky.log");
    await f.balsam.apps.add({ name: "flaky", executable: script("flaky.sh", `echo run >> ${log}.$BALSAM_JOB_ID; exit 1`) });
    const add = async (name: string, extra: string[]) => {
      const r = await runBalsam(["job", "--name", name, "--workflow", "FLAKY", "--application", "flaky", "--yes", ...extra], { env: f.db.env });
      assert.equal(r.code, 0, r.stderr);
      return (await f.balsam.jobs.filter({ workflow: "FLAKY", name }).list())[0]!;
    };
    const retried = await add("retried", []);
    const once = await add("once", ["--fast-fail-retries", "0"]);
    await launch("FLAKY", "serial");
    const runs = (id: string) => readFileSync(`${log}.${id}`, "utf8").split("\n").filter(Boolean).length;
    const r = await f.balsam.jobs.get(retried._id);
    assert.equal(r.state, "FAILED");
    assert.equal(runs(r._id), 4, "the first run and three retries");
    assert.deepEqual(r.stateHistory.filter((h) => h.state === "RESTART_READY").map((h) => h.message), ["failed fast: retry 1 of 3", "failed fast: retry 2 of 3", "failed fast: retry 3 of 3"]);
    const o = await f.balsam.jobs.get(once._id);
    assert.equal(o.state, "FAILED");
    assert.equal(runs(o._id), 1);
  });
});
