import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { BALSAM_BIN } from "../support/cli.js";
import { useCliFixture } from "../support/fixture.js";

/**
 * Balsam 0.x's DAG behaviour on the launcher's side (issue 22 items 1, 2, 8,
 * 10), each of which gave a wrong answer or a green run on the code before:
 * the run is built from the row as the preprocess left it; every parent's
 * same-named input file is linked; a handler's log says what it handles; a
 * handler that exits 0 without fixing the state fails the job.
 */
const f = useCliFixture("dag-zerox");
const BALSAM = `"${process.execPath}" "${BALSAM_BIN}"`;
const script = (name: string, body: string) => f.script(name, body);
const launch = (wf: string, mode: "serial" | "mpi" = "serial", args: string[] = []) => f.launch(wf, { mode, args });

describe("a Balsam 0.x DAG on the launcher", () => {
  test("a preprocess's edits to args and environment are what runs (0.x builds the run from the row after it)", async () => {
    const pre = script("edit_pre.sh", `${BALSAM} modify "$BALSAM_JOB_ID" args -- "--side 7" && ${BALSAM} modify "$BALSAM_JOB_ID" environ_vars "COLOR=blue"`);
    await f.balsam.apps.add({ name: "side", executable: script("side.sh", 'echo "BALSAM-RESULT: {\\"args\\": \\"$*\\", \\"color\\": \\"$COLOR\\"}"'), preprocess: pre });
    const j = await f.balsam.jobs.add({ name: "edited", workflow: "PRE", application: "side", args: "--side 1", environVars: { COLOR: "red" } });
    await launch("PRE");
    const done = await f.balsam.jobs.get(j._id);
    assert.equal(done.state, "JOB_FINISHED", JSON.stringify(done.stateHistory));
    assert.deepEqual(done.data.result, { args: "--side 7", color: "blue" });
  });

  test("mpi mode: a preprocess that sets ranks_per_node to 2 gets 2 ranks; on a serial launcher the job is left, preprocessed, for an mpi one", async () => {
    const pre = script("ranks_pre.sh", `${BALSAM} modify "$BALSAM_JOB_ID" ranks_per_node 2 && echo pre >> pre.count`);
    await f.balsam.apps.add({ name: "ranked", executable: script("ranked.sh", 'echo "rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE"'), preprocess: pre });
    const m = await f.balsam.jobs.add({ name: "mpi", workflow: "RANKPRE", application: "ranked" });
    await launch("RANKPRE", "mpi");
    const doc = await f.balsam.jobs.get(m._id);
    assert.equal(doc.state, "JOB_FINISHED", JSON.stringify(doc.stateHistory));
    const ranks = readFileSync(join(doc.workdir, "mpi.out"), "utf8").split("\n").filter((l) => l.startsWith("rank")).sort();
    assert.deepEqual(ranks, ["rank 0 of 2", "rank 1 of 2"]);

    const s = await f.balsam.jobs.add({ name: "ser", workflow: "RANKSER", application: "ranked" });
    const out = await launch("RANKSER", "serial");
    const mid = await f.balsam.jobs.get(s._id);
    assert.equal(mid.state, "RESTART_READY", `${JSON.stringify(mid.stateHistory)}\n${out}`);
    assert.match(mid.stateHistory.at(-1)!.message, /its preprocess asked for 2 ranks: serial launchers run single-process jobs/);
    await launch("RANKSER", "mpi");
    const fin = await f.balsam.jobs.get(s._id);
    assert.equal(fin.state, "JOB_FINISHED", JSON.stringify(fin.stateHistory));
    assert.equal(readFileSync(join(fin.workdir, "pre.count"), "utf8"), "pre\n", "preprocessed once: the mpi launcher ran it at once");
    assert.equal(readFileSync(join(fin.workdir, "ser.out"), "utf8").split("\n").filter((l) => l.startsWith("rank")).length, 2);
  });

  test("same-named input files from three parents are all linked (the clash suffixed with the parent's id), so a reduce sums them all", async () => {
    await f.balsam.apps.add({ name: "square", executable: script("square.sh", 'echo $(($1 * $1)) > square.dat') });
    await f.balsam.apps.add({ name: "reduce", executable: script("reduce.sh", 't=0; for f in square.dat*; do t=$((t + $(cat "$f"))); done; echo "BALSAM-RESULT: $t"') });
    const sq = await f.balsam.jobs.addMany([1, 2, 3].map((x) => ({ name: `sq${x}`, workflow: "RED", application: "square", args: String(x) })));
    const red = await f.balsam.jobs.add({ name: "sum", workflow: "RED", application: "reduce", parents: sq.map((p) => p._id), inputFiles: "square.dat*" });
    await launch("RED");
    const done = await f.balsam.jobs.get(red._id);
    assert.equal(done.state, "JOB_FINISHED", JSON.stringify(done.stateHistory));
    assert.equal(done.data.result, 14);
    const links = readdirSync(done.workdir).filter((f) => f.startsWith("square.dat")).sort();
    assert.equal(links.length, 3);
    // The first parent's file keeps its name; the others carry their parent's id, as 0.x names them.
    assert.equal(readlinkSync(join(done.workdir, "square.dat")), join((await f.balsam.jobs.get(sq[0]!._id)).workdir, "square.dat"));
    for (const p of sq.slice(1)) assert.ok(links.includes(`square.dat_${p._id.slice(0, 8)}`), links.join(" "));
  });

  test("a timeout handler that exits 0 without changing the state fails the job; its log says it handled RUN_TIMEOUT", async () => {
    const post = script("tpost.sh", 'echo "timeout=$BALSAM_JOB_TIMEOUT"');
    await f.balsam.apps.add({ name: "slowpoke", executable: script("slowpoke.sh", "exec sleep 60"), postprocess: post });
    const j = await f.balsam.jobs.add({ name: "slowpoke", workflow: "TOUT", application: "slowpoke", postTimeoutHandler: true, wallTimeMinutes: 0 });
    await launch("TOUT", "serial", ["--time-limit-minutes", "0.05"]);
    const doc = await f.balsam.jobs.get(j._id);
    assert.equal(doc.state, "FAILED", JSON.stringify(doc.stateHistory));
    assert.equal(doc.stateHistory.at(-1)!.message, "Timeout handling didn't change job state: marking FAILED");
    assert.match(readFileSync(join(doc.workdir, "postprocess.log"), "utf8"), /^# balsam: running .*tpost\.sh\n# Invoked to handle RUN_TIMEOUT\ntimeout=TRUE\n/);
  });

  test("a postprocess that sets POSTPROCESSED itself is carried on to JOB_FINISHED, once", async () => {
    const post = script("setpost.sh", `${BALSAM} modify "$BALSAM_JOB_ID" state POSTPROCESSED > /dev/null`);
    await f.balsam.apps.add({ name: "selfpost", executable: "/bin/true", postprocess: post });
    const j = await f.balsam.jobs.add({ name: "selfpost", workflow: "SELFPOST", application: "selfpost" });
    await launch("SELFPOST");
    const doc = await f.balsam.jobs.get(j._id);
    assert.equal(doc.state, "JOB_FINISHED", JSON.stringify(doc.stateHistory));
    assert.deepEqual(doc.stateHistory.slice(-3).map((h) => h.state), ["RUN_DONE", "POSTPROCESSED", "JOB_FINISHED"]);
    assert.equal(doc.lock, null);
  });
});
