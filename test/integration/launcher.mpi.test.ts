import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../support/context.js";
import { useCliFixture } from "../support/fixture.js";

// Real Open MPI (provisioned by scripts/provision.sh). Two "nodes" of one
// machine: localhost and its host name, both local to mpirun (f.start's "mpi" mode).
const f = useCliFixture("mpi");

describe("mpi launcher", () => {
  before(async () => {
    const rank = f.script("rank.sh", 'echo "rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE threads $OMP_NUM_THREADS job $BALSAM_JOB_ID"');
    await f.balsam.apps.add({ name: "rank", executable: rank });
    const sleeper = f.script("sleeper.sh", "echo started > started.txt\nexec sleep 120");
    await f.balsam.apps.add({ name: "sleeper", executable: sleeper });
  });

  test("an MPI job of 2 ranks on 2 nodes: both ranks ran with the job's environment", async () => {
    const j = await f.balsam.jobs.add({ name: "two", workflow: "MPI", application: "rank", numNodes: 2, ranksPerNode: 1, threadsPerRank: 2 });
    const l = f.start("MPI", { mode: "mpi", exact: true });
    assert.equal(await l.exited, 0, l.output());
    const done = await f.balsam.jobs.get(j._id);
    assert.equal(done.state, "JOB_FINISHED", JSON.stringify(done.stateHistory));
    const out = readFileSync(join(done.workdir, "two.out"), "utf8");
    assert.match(out, new RegExp(`rank 0 of 2 threads 2 job ${j._id}`));
    assert.match(out, new RegExp(`rank 1 of 2 threads 2 job ${j._id}`));
  });

  test("largest jobs first; a job larger than the allocation is left for another launcher, not stuck", async () => {
    const big = await f.balsam.jobs.add({ name: "huge", workflow: "BIG", application: "rank", numNodes: 3 });
    const ok = await f.balsam.jobs.add({ name: "fits", workflow: "BIG", application: "rank", numNodes: 1, ranksPerNode: 2 });
    const l = f.start("BIG", { mode: "mpi" });
    assert.equal(await l.exited, 0, l.output());
    assert.match(l.output(), /job .* needs 3 nodes, this launcher has 2: left for another launcher/);
    assert.equal((await f.balsam.jobs.get(ok._id)).state, "JOB_FINISHED");
    assert.equal((await f.balsam.jobs.get(big._id)).state, "READY");
  });

  test("killjob stops a running MPI job", async () => {
    const j = await f.balsam.jobs.add({ name: "victim", workflow: "MPIKILL", application: "sleeper", numNodes: 1, ranksPerNode: 1 });
    const l = f.start("MPIKILL", { mode: "mpi", env: { BALSAM_KILL_GRACE_MS: "2000" } });
    await waitFor(async () => {
      const cur = await f.balsam.jobs.get(j._id);
      return cur.state === "RUNNING" && existsSync(join(cur.workdir, "started.txt"));
    }, 30_000, "the MPI job to start");
    await f.balsam.jobs.kill(j._id);
    assert.equal(await l.exited, 0, l.output());
    assert.equal((await f.balsam.jobs.get(j._id)).state, "USER_KILLED");
  });
});
