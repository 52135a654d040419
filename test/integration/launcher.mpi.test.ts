import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir, hostname } from "node:os";
import { join } from "node:path";
import { useTestContext, waitFor } from "../support/context.js";
import { makeCliDb, type CliDb } from "../support/cli.js";
import { startLauncher } from "../support/launcher.js";
import { connect, type Balsam } from "../../libs/client/index.js";

// Real Open MPI (provisioned by scripts/provision.sh). Two "nodes" of one
// machine: localhost and its host name, both local to mpirun.
const ctx = useTestContext("mpi");
let db: CliDb;
let balsam: Balsam;
let scripts: string;
const NODES = `localhost,${hostname()}`;

describe("mpi launcher", () => {
  before(async () => {
    db = await makeCliDb(ctx.mongoUrl, ctx.redisUrl, ctx.dbName, ctx.prefix);
    balsam = await connect({ dbPath: db.dir });
    scripts = mkdtempSync(join(tmpdir(), "balsam-mpi-"));
    const rank = join(scripts, "rank.sh");
    writeFileSync(rank, '#!/bin/sh\necho "rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE threads $OMP_NUM_THREADS job $BALSAM_JOB_ID"\n', { mode: 0o755 });
    await balsam.apps.add({ name: "rank", executable: rank });
    const sleeper = join(scripts, "sleeper.sh");
    writeFileSync(sleeper, "#!/bin/sh\necho started > started.txt\nexec sleep 120\n", { mode: 0o755 });
    await balsam.apps.add({ name: "sleeper", executable: sleeper });
  });
  after(async () => {
    await balsam.close();
    db.cleanup();
    rmSync(scripts, { recursive: true, force: true });
  });

  test("an MPI job of 2 ranks on 2 nodes: both ranks ran with the job's environment", async () => {
    const j = await balsam.jobs.add({ name: "two", workflow: "MPI", application: "rank", numNodes: 2, ranksPerNode: 1, threadsPerRank: 2 });
    const l = startLauncher(["--wf-exact", "MPI", "--job-mode", "mpi"], { ...db.env, BALSAM_NODELIST: NODES });
    assert.equal(await l.exited, 0, l.output());
    const done = await balsam.jobs.get(j._id);
    assert.equal(done.state, "JOB_FINISHED", JSON.stringify(done.stateHistory));
    const out = readFileSync(join(done.workdir, "two.out"), "utf8");
    assert.match(out, new RegExp(`rank 0 of 2 threads 2 job ${j._id}`));
    assert.match(out, new RegExp(`rank 1 of 2 threads 2 job ${j._id}`));
  });

  test("largest jobs first; a job larger than the allocation is left for another launcher, not stuck", async () => {
    const big = await balsam.jobs.add({ name: "huge", workflow: "BIG", application: "rank", numNodes: 3 });
    const ok = await balsam.jobs.add({ name: "fits", workflow: "BIG", application: "rank", numNodes: 1, ranksPerNode: 2 });
    const l = startLauncher(["--wf-filter", "BIG", "--job-mode", "mpi"], { ...db.env, BALSAM_NODELIST: NODES });
    assert.equal(await l.exited, 0, l.output());
    assert.match(l.output(), /job .* needs 3 nodes, this launcher has 2: left for another launcher/);
    assert.equal((await balsam.jobs.get(ok._id)).state, "JOB_FINISHED");
    assert.equal((await balsam.jobs.get(big._id)).state, "READY");
  });

  test("killjob stops a running MPI job", async () => {
    const j = await balsam.jobs.add({ name: "victim", workflow: "MPIKILL", application: "sleeper", numNodes: 1, ranksPerNode: 1 });
    const l = startLauncher(["--wf-filter", "MPIKILL", "--job-mode", "mpi"], { ...db.env, BALSAM_NODELIST: NODES, BALSAM_KILL_GRACE_MS: "2000" });
    await waitFor(async () => {
      const cur = await balsam.jobs.get(j._id);
      return cur.state === "RUNNING" && existsSync(join(cur.workdir, "started.txt"));
    }, 30_000, "the MPI job to start");
    await balsam.jobs.kill(j._id);
    assert.equal(await l.exited, 0, l.output());
    assert.equal((await balsam.jobs.get(j._id)).state, "USER_KILLED");
  });
});
