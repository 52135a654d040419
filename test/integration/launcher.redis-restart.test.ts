import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { useRestartRun } from "../support/restart.js";
import { startRedis } from "../../services/dbserver/servers.js";

// DESIGN §6.1: restarting Redis mid-run loses no job. This file has a Redis
// of its own (with AOF, as a real deployment) so restarting it does not
// disturb the other test files sharing the run's servers.
const { f, runThroughRestart, assertFinishedOnce } = useRestartRun("redisrestart", "redisUrl", (dir, port) => startRedis({ dir, port, appendOnly: true }), 0.2);

describe("a Redis restart in the middle of a run", () => {
  test("every job still finishes, once", async () => {
    await runThroughRestart("RR", { n: 60, prefix: "r", finishedFirst: 10, waitingFor: "ten jobs to finish" });
    await assertFinishedOnce("RR", 60);
  });

  test("a Redis that comes back empty (no persistence): the launcher re-offers what was lost", async () => {
    const between = () => rmSync(f.dir + "/appendonlydir", { recursive: true, force: true });
    // Enough jobs that some chunks are still in Redis, not in the launcher's hand, when it empties: a launcher holds
    // a chunk's worth of waiting jobs and more (options.ts), 40 jobs were once all in hand by then.
    const l = await runThroughRestart("EMPTY", { n: 120, prefix: "e", finishedFirst: 5, waitingFor: "five jobs to finish", between });
    assert.match(l.output(), /re-offered \d+ queue entries/);
    assert.deepEqual(await f.balsam.jobs.filter({ workflow: "EMPTY" }).byState(), { JOB_FINISHED: 120 });
  });
});
