import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../support/context.js";
import { useRestartRun } from "../support/restart.js";
import { startMongo } from "../../services/dbserver/servers.js";

// DESIGN §6.1: restarting the MongoDB-wire server mid-run loses no job. The
// file runs a server of its own so the restart does not disturb other files.
const { f, server: mongo, runThroughRestart, assertFinishedOnce } = useRestartRun("mongorestart", "mongoUrl", (dir, port) => startMongo({ dir: join(dir, "data"), port }), 0.3);

describe("a MongoDB restart in the middle of a run", () => {
  test("the launcher waits the restart out; every job finishes once", async () => {
    // Short leases: a claim whose answer the restart swallowed is recovered quickly.
    await runThroughRestart("MR", { n: 40, prefix: "m", finishedFirst: 8, waitingFor: "eight jobs to finish", env: { BALSAM_LEASE_TTL_MS: "4000" } });
    await assertFinishedOnce("MR", 40);
  });

  // Jobs that end faster than the database records them must not pile up in
  // the launcher (they did: 9,500 finished, unrecorded jobs, 600 MiB at 100k).
  // The server is frozen (SIGSTOP) once the launcher runs jobs, and thawed
  // once the launcher says it is behind. Frozen, the launcher's BullMQ
  // worker stops fetching once every processor (at least 4) waits on a
  // write, so a backlog threshold of 3 is reached whatever the relative
  // speed of the two processes (a server slowed rather than frozen was
  // outrun only on an idle machine, and the default 500 never).
  test("a launcher whose database falls behind waits for it instead of piling up finished jobs; all are recorded once", async () => {
    const log = join(f.dir, "ran.log");
    const counted = f.script("counted.sh", `echo "$BALSAM_JOB_ID" >> ${log}`);
    await f.balsam.apps.add({ name: "counted", executable: counted });
    const n = 300;
    const backlog = 3;
    await f.balsam.jobs.addMany(Array.from({ length: n }, (_, i) => ({ name: `s${i}`, workflow: "SLOWDB", application: "counted", nodePackingCount: 4 })));
    const l = f.start("SLOWDB", { env: { BALSAM_WRITE_BACKLOG: String(backlog) } });
    const runs = () => (existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean).length : 0);
    const pid = mongo().pid;
    let ranWhileBehind = 0;
    try {
      await waitFor(() => runs() > 0, 60_000, "the first job to run");
      process.kill(pid, "SIGSTOP");
      const frozenAt = runs();
      await waitFor(() => /the database is behind: \d+ state writes wait for it/.test(l.output()), 60_000, "the launcher to wait for the database").catch((err: Error) => {
        throw new Error(`${err.message}; ${runs()} jobs ran; the launcher said:\n${l.output().slice(-3000)}`);
      });
      ranWhileBehind = runs() - frozenAt;
    } catch (err) {
      l.child.kill("SIGKILL");
      throw err;
    } finally {
      process.kill(pid, "SIGCONT");
    }
    // At most one job per slot (4) starts past the threshold, besides those running when it was reached.
    assert.ok(ranWhileBehind <= backlog + 8, `${ranWhileBehind} jobs ran while the database was frozen`);
    assert.equal(await l.exited, 0, l.output());
    const ids = readFileSync(log, "utf8").split("\n").filter(Boolean);
    assert.equal(ids.length, n, "each job ran once");
    assert.equal(new Set(ids).size, n);
    assert.deepEqual(await f.balsam.jobs.filter({ workflow: "SLOWDB" }).byState(), { JOB_FINISHED: n });
  });
});
