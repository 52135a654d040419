import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { useTestContext, waitFor } from "../support/context.js";
import { makeCliDb, type CliDb } from "../support/cli.js";
import { startLauncher } from "../support/launcher.js";
import { connect, type Balsam } from "../../libs/client/index.js";
import { startRedis, type ServerHandle } from "../../services/dbserver/servers.js";

// DESIGN §6.1: restarting Redis mid-run loses no job. This file has a Redis
// of its own (with AOF, as a real deployment) so restarting it does not
// disturb the other test files sharing the run's servers.
const ctx = useTestContext("redisrestart");
let redis: ServerHandle;
let redisDir: string;
let db: CliDb;
let balsam: Balsam;

describe("a Redis restart in the middle of a run", () => {
  before(async () => {
    redisDir = mkdtempSync(join(tmpdir(), "balsam-own-redis-"));
    redis = await startRedis({ dir: redisDir, appendOnly: true });
    db = await makeCliDb(ctx.mongoUrl, redis.url, ctx.dbName, ctx.prefix);
    balsam = await connect({ dbPath: db.dir });
    const script = join(redisDir, "slowish.sh");
    writeFileSync(script, '#!/bin/sh\nsleep 0.2\necho "DH-OUTPUT: $1"\n', { mode: 0o755 });
    await balsam.apps.add({ name: "slowish", executable: script });
  });
  after(async () => {
    await balsam.close();
    await redis.stop();
    db.cleanup();
    rmSync(redisDir, { recursive: true, force: true });
  });

  test("every job still finishes, once", async () => {
    const jobs = await balsam.jobs.addMany(Array.from({ length: 60 }, (_, i) => ({ name: `r${i}`, workflow: "RR", application: "slowish", args: String(i), nodePackingCount: 4 })));
    const l = startLauncher(["--wf-filter", "RR", "--job-mode", "serial"], { ...db.env, BALSAM_NODELIST: "node1" });
    await waitFor(async () => (await balsam.jobs.filter({ workflow: "RR", state: "JOB_FINISHED" }).count()) >= 10, 60_000, "ten jobs to finish");
    // Stop Redis and start it again on the same port and data directory.
    const port = redis.port;
    await redis.stop();
    redis = await startRedis({ dir: redisDir, port, appendOnly: true });
    assert.equal(await l.exited, 0, l.output());
    const done = await balsam.jobs.filter({ workflow: "RR" }).list();
    assert.equal(done.length, 60);
    for (const j of done) {
      assert.equal(j.state, "JOB_FINISHED", `${j.name}: ${JSON.stringify(j.stateHistory)}`);
      assert.equal(j.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1);
      assert.equal(j.data.result, Number(j.args));
    }
    assert.equal(jobs.length, 60);
  });

  test("a Redis that comes back empty (no persistence): the launcher re-offers what was lost", async () => {
    await balsam.jobs.addMany(Array.from({ length: 40 }, (_, i) => ({ name: `e${i}`, workflow: "EMPTY", application: "slowish", args: String(i), nodePackingCount: 4 })));
    const l = startLauncher(["--wf-filter", "EMPTY", "--job-mode", "serial"], { ...db.env, BALSAM_NODELIST: "node1" });
    await waitFor(async () => (await balsam.jobs.filter({ workflow: "EMPTY", state: "JOB_FINISHED" }).count()) >= 5, 60_000, "five jobs to finish");
    const port = redis.port;
    await redis.stop();
    rmSync(redisDir + "/appendonlydir", { recursive: true, force: true });
    redis = await startRedis({ dir: redisDir, port, appendOnly: true });
    assert.equal(await l.exited, 0, l.output());
    assert.match(l.output(), /re-offered \d+ queue entries/);
    assert.deepEqual(await balsam.jobs.filter({ workflow: "EMPTY" }).byState(), { JOB_FINISHED: 40 });
  });
});
