import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { useCliFixture } from "../support/fixture.js";
import type { Job } from "../../libs/client/index.js";

/**
 * A map/reduce DAG written the Balsam 0.x way, its scripts in Python through
 * `balsam.launcher.dag` (issue 22): a job whose preprocess sets its
 * environment and rank count from its own arguments (`save(update_fields=…)`,
 * a rank count given as a string), whose postprocess spawns one square per
 * side file and makes each a parent of the reducer (`get_child_by_name`,
 * `add_dependency`); squares whose preprocess sets their args from the
 * parent's file they were given; a reducer whose preprocess sets its args
 * from every parent's same-named `square.dat`; and a timeout handler that
 * spawns a rescue clone and re-parents the reducer onto it (`set_parents`).
 * The answer is checked as a number, not only the states.
 */
const f = useCliFixture("py-dag", { web: true });
const CLIENT = resolve(fileURLToPath(import.meta.url), "../../../../clients/python");
const PYTHON = process.env.BALSAM_TEST_PYTHON ?? "python3";
const py = (name: string, body: string) => f.script(name, body.trim(), `#!/usr/bin/env ${PYTHON}`);
const launch = (wf: string, mode: "serial" | "mpi", args: string[] = []) => f.launch(wf, { mode, args, env: { PYTHONPATH: CLIENT, PYTHONDONTWRITEBYTECODE: "1" } });

/** The sides job ("make N sides of lengths 1..N", its preprocess told N and the rank count) and its reducer, made first as 0.x's test_dag does. */
async function sidesAndReducer(wf: string, preArgs: string, sidesArgs: string, fields: Partial<Job> = {}): Promise<{ sides: Job; reducer: Job }> {
  const sides = await f.balsam.jobs.add({ name: "make_sides", workflow: wf, application: "sides", args: sidesArgs, preprocess: `${join(f.dir, "sides_pre.py")} ${preArgs}`, ...fields });
  const reducer = await f.balsam.jobs.add({ name: "sum_squares", workflow: wf, application: "reduce", parents: [sides._id], inputFiles: "square.dat*" });
  return { sides, reducer };
}

async function answer(reducer: Job): Promise<{ total: number; doc: Job }> {
  const doc = await f.balsam.jobs.get(reducer._id);
  assert.equal(doc.state, "JOB_FINISHED", JSON.stringify(doc.stateHistory));
  return { total: Number(doc.data.result), doc };
}

describe("a map/reduce DAG written the 0.x way", () => {
  before(async () => {
    py("sides_pre.py", `
import sys
import balsam.launcher.dag as dag
job = dag.current_job
job.environ_vars = f"NUM_SIDES={sys.argv[1]}:NUM_RANKS={sys.argv[2]}"
job.ranks_per_node = sys.argv[2]
job.save(update_fields=["environ_vars", "ranks_per_node"])
`);
    // Rank 0 writes side{i}.dat holding i+1; every rank says who it is.
    py("sides.py", `
import os, sys, time
if "--sleep" in sys.argv:
    time.sleep(float(sys.argv[sys.argv.index("--sleep") + 1]))
rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
print(f"rank {rank} of {os.environ.get('OMPI_COMM_WORLD_SIZE', '1')}")
if rank == 0:
    for i in range(int(os.environ["NUM_SIDES"])):
        with open(f"side{i}.dat", "w") as fp:
            fp.write(f"{i + 1}\\n")
`);
    py("sides_post.py", `
import glob
import balsam.launcher.dag as dag
job = dag.current_job
if dag.TIMEOUT or dag.ERROR:
    if "RUN_TIMEOUT" not in job.state_history:
        raise SystemExit("the handler runs with the job's history saying RUN_TIMEOUT")
    children = job.get_children()
    rescue = dag.spawn_child(clone=True, application_args="--sleep 0", state="CREATED")
    rescue.set_parents([])
    job.update_state("JOB_FINISHED", f"spawned rescue job {rescue.cute_id}")
    for child in children:
        child.set_parents([rescue])
    raise SystemExit(0)
reducer = job.get_child_by_name("sum_squares")
for i, side in enumerate(sorted(glob.glob("side*.dat"))):
    square = dag.spawn_child(name=f"square{i}", application="square", application_args="", input_files=side)
    dag.add_dependency(parent=square, child=reducer)
`);
    py("square_pre.py", `
import glob
import balsam.launcher.dag as dag
job = dag.current_job
if not job.application_args:
    job.application_args = glob.glob("side*.dat")[0]
    job.save()
`);
    py("square.py", `
import sys
side = float(open(sys.argv[1]).read())
with open("square.dat", "w") as fp:
    fp.write(f"{side * side}\\n")
`);
    py("reduce_pre.py", `
import glob
import balsam.launcher.dag as dag
job = dag.current_job
job.application_args = " ".join(sorted(glob.glob("square*.dat*")))
job.save(update_fields=["application_args"])
`);
    py("reduce.py", `
import sys
print("BALSAM-RESULT:", sum(float(open(f).read()) for f in sys.argv[1:]))
`);
    await f.balsam.apps.add({ name: "sides", executable: join(f.dir, "sides.py"), postprocess: join(f.dir, "sides_post.py") });
    await f.balsam.apps.add({ name: "square", executable: join(f.dir, "square.py"), preprocess: join(f.dir, "square_pre.py") });
    await f.balsam.apps.add({ name: "reduce", executable: join(f.dir, "reduce.py"), preprocess: join(f.dir, "reduce_pre.py") });
  });

  test("four dynamically spawned squares of sides 1..4 are reduced to 30", async () => {
    const { sides, reducer } = await sidesAndReducer("MAPRED", "4 1", "");
    await launch("MAPRED", "serial");
    const { total, doc } = await answer(reducer);
    assert.equal(total, 30);
    assert.equal(doc.parents.length, 5, "the sides job and its four squares");
    const squares = (await f.balsam.jobs.filter({ workflow: "MAPRED", name: "square" }).list()).filter((j) => /^square\d$/.test(j.name));
    assert.equal(squares.length, 4);
    for (const s of squares) {
      assert.deepEqual(s.parents, [sides._id]);
      assert.match(s.args, /^side\d\.dat$/, "set by its preprocess from the file its parent gave it");
    }
  });

  test("a timed-out job's handler spawns a rescue and re-parents the reducer onto it: sides 1..3 reduce to 14", async () => {
    const { sides, reducer } = await sidesAndReducer("RESCUE", "3 1", "--sleep 60", { postTimeoutHandler: true, wallTimeMinutes: 0 });
    await launch("RESCUE", "serial", ["--time-limit-minutes", "0.05"]);
    const handled = await f.balsam.jobs.get(sides._id);
    assert.equal(handled.state, "JOB_FINISHED", JSON.stringify(handled.stateHistory));
    assert.match(handled.stateHistory.at(-1)!.message, /^spawned rescue job \[make_sides \| [0-9a-f]{8}\]$/);
    assert.match(readFileSync(join(handled.workdir, "postprocess.log"), "utf8"), /# Invoked to handle RUN_TIMEOUT/);
    await launch("RESCUE", "serial");
    const { total, doc } = await answer(reducer);
    assert.equal(total, 14);
    const rescue = (await f.balsam.jobs.filter({ workflow: "RESCUE", name: "make_sides" }).list()).find((j) => j._id !== sides._id)!;
    assert.ok(doc.parents.includes(rescue._id) && !doc.parents.includes(sides._id), JSON.stringify(doc.parents));
    assert.deepEqual(rescue.parents, []);
    assert.equal(rescue.args, "--sleep 0");
  });

  test("mpi mode: the preprocess's rank count '2' (a string, from argv) is what mpirun gets; sides 1..2 reduce to 5", async () => {
    const { sides, reducer } = await sidesAndReducer("MPIRED", "2 2", "");
    await launch("MPIRED", "mpi");
    const { total } = await answer(reducer);
    assert.equal(total, 5);
    const ran = await f.balsam.jobs.get(sides._id);
    assert.equal(ran.ranksPerNode, 2);
    // mpirun forwards both ranks' output into one file as it comes, so a line can arrive joined to the other's.
    const ranks = (readFileSync(join(ran.workdir, "make_sides.out"), "utf8").match(/rank \d+ of \d+/g) ?? []).sort();
    assert.deepEqual(ranks, ["rank 0 of 2", "rank 1 of 2"]);
  });
});
