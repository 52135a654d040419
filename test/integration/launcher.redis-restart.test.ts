import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { waitFor } from "../support/context.js";
import { useCliFixture } from "../support/fixture.js";
import { startRedis, type ServerHandle } from "../../services/dbserver/servers.js";

// DESIGN §6.1: restarting Redis mid-run loses no job. This file has a Redis
// of its own (with AOF, as a real deployment) so restarting it does not
// disturb the other test files sharing the run's servers.
let redis: ServerHandle;
const f = useCliFixture("redisrestart", {
  servers: async (dir) => {
    redis = await startRedis({ dir, appendOnly: true });
    return { redisUrl: redis.url, stop: () => redis.stop() };
  },
});

describe("a Redis restart in the middle of a run", () => {
  before(async () => {
    const script = f.script("slowish.sh", 'sleep 0.2\necho "DH-OUTPUT: $1"');
    await f.balsam.apps.add({ name: "slowish", executable: script });
  });

  test("every job still finishes, once", async () => {
    const jobs = await f.balsam.jobs.addMany(Array.from({ length: 60 }, (_, i) => ({ name: `r${i}`, workflow: "RR", application: "slowish", args: String(i), nodePackingCount: 4 })));
    const l = f.start("RR");
    await waitFor(async () => (await f.balsam.jobs.filter({ workflow: "RR", state: "JOB_FINISHED" }).count()) >= 10, 60_000, "ten jobs to finish");
    // Stop Redis and start it again on the same port and data directory.
    const port = redis.port;
    await redis.stop();
    redis = await startRedis({ dir: f.dir, port, appendOnly: true });
    assert.equal(await l.exited, 0, l.output());
    const done = await f.balsam.jobs.filter({ workflow: "RR" }).list();
    assert.equal(done.length, 60);
    for (const j of done) {
      assert.equal(j.state, "JOB_FINISHED", `${j.name}: ${JSON.stringify(j.stateHistory)}`);
      assert.equal(j.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1);
      assert.equal(j.data.result, Number(j.args));
    }
    assert.equal(jobs.length, 60);
  });

  test("a Redis that comes back empty (no persistence): the launcher re-offers what was lost", async () => {
    await f.balsam.jobs.addMany(Array.from({ length: 40 }, (_, i) => ({ name: `e${i}`, workflow: "EMPTY", application: "slowish", args: String(i), nodePackingCount: 4 })));
    const l = f.start("EMPTY");
    await waitFor(async () => (await f.balsam.jobs.filter({ workflow: "EMPTY", state: "JOB_FINISHED" }).count()) >= 5, 60_000, "five jobs to finish");
    const port = redis.port;
    await redis.stop();
    rmSync(f.dir + "/appendonlydir", { recursive: true, force: true });
    redis = await startRedis({ dir: f.dir, port, appendOnly: true });
    assert.equal(await l.exited, 0, l.output());
    assert.match(l.output(), /re-offered \d+ queue entries/);
    assert.deepEqual(await f.balsam.jobs.filter({ workflow: "EMPTY" }).byState(), { JOB_FINISHED: 40 });
  });
});
