/**
 * DESIGN §6.1 on a *local* database, as a user meets it: both of its servers
 * are killed with SIGKILL in the middle of a 2,000-job run and brought back
 * with `balsam server --connect`; the running launcher finds them (same
 * ports, same passwords) and finishes the run — 0 lost, 0 finished twice.
 */
import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { useLocalDb } from "../support/local-db.js";
import { exitedWithin, startLauncher } from "../support/launcher.js";
import { connect, type Balsam } from "../../libs/client/index.js";
import { waitFor } from "../../services/dbserver/servers.js";

describe("local servers killed and restarted mid-run", () => {
  const db = useLocalDb("localrestart", { connect: true });
  before(async () => {
    assert.equal((await db.run(["make_dummies", "2000", "--wf", "LR"])).code, 0);
  });

  test("the running launcher finishes all 2,000 jobs once", async () => {
    // make_dummies' jobs run its `dummy` app, /bin/true.
    const l = startLauncher(["--wf-filter", "LR", "--job-mode", "serial"], { ...db.env, BALSAM_NODELIST: "node1", BALSAM_LEASE_TTL_MS: "6000" });
    let balsam: Balsam | undefined = await connect({ dbPath: db.dir });
    await waitFor(async () => (await balsam!.jobs.filter({ workflow: "LR", state: "JOB_FINISHED" }).count()) >= 300, 120_000, "300 jobs to finish");
    await balsam.close();
    balsam = undefined;
    await db.killServers();
    const up = await db.run(["server", "--connect"]);
    assert.equal(up.code, 0, up.stderr);
    // Bounded: a launcher that never finds the servers again must fail the test, not hang it.
    assert.equal(await exitedWithin(l, 300_000), 0, l.output().slice(-3000));
    const b = await connect({ dbPath: db.dir });
    try {
      const jobs = await b.jobs.filter({ workflow: "LR" }).list();
      assert.equal(jobs.length, 2000);
      const notDone = jobs.filter((j) => j.state !== "JOB_FINISHED");
      assert.equal(notDone.length, 0, `not finished: ${notDone.slice(0, 3).map((j) => `${j.name} ${j.state}`).join("; ")}`);
      for (const j of jobs) assert.equal(j.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1, `${j.name} finished twice`);
    } finally {
      await b.close();
    }
  });
});
