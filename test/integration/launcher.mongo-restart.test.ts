import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { useTestContext, waitFor } from "../support/context.js";
import { makeCliDb, type CliDb } from "../support/cli.js";
import { startLauncher } from "../support/launcher.js";
import { connect, type Balsam } from "../../libs/client/index.js";
import { startMongo, type MongoHandle } from "../../services/dbserver/servers.js";

// DESIGN §6.1: restarting the MongoDB-wire server mid-run loses no job. The
// file runs a server of its own so the restart does not disturb other files.
const ctx = useTestContext("mongorestart");
let mongo: MongoHandle;
let dir: string;
let db: CliDb;
let balsam: Balsam;

describe("a MongoDB restart in the middle of a run", () => {
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "balsam-own-mongo-"));
    mongo = await startMongo({ dir: join(dir, "data") });
    db = await makeCliDb(mongo.url, ctx.redisUrl, ctx.dbName, ctx.prefix);
    balsam = await connect({ dbPath: db.dir });
    const script = join(dir, "slowish.sh");
    writeFileSync(script, '#!/bin/sh\nsleep 0.3\necho "DH-OUTPUT: $1"\n', { mode: 0o755 });
    await balsam.apps.add({ name: "slowish", executable: script });
  });
  after(async () => {
    await balsam.close();
    await mongo.stop();
    db.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test("the launcher waits the restart out; every job finishes once", async () => {
    await balsam.jobs.addMany(Array.from({ length: 40 }, (_, i) => ({ name: `m${i}`, workflow: "MR", application: "slowish", args: String(i), nodePackingCount: 4 })));
    // Short leases: a claim whose answer the restart swallowed is recovered quickly.
    const l = startLauncher(["--wf-filter", "MR", "--job-mode", "serial"], { ...db.env, BALSAM_NODELIST: "node1", BALSAM_LEASE_TTL_MS: "4000" });
    await waitFor(async () => (await balsam.jobs.filter({ workflow: "MR", state: "JOB_FINISHED" }).count()) >= 8, 60_000, "eight jobs to finish");
    const port = mongo.port;
    await mongo.stop();
    mongo = await startMongo({ dir: join(dir, "data"), port });
    assert.equal(await l.exited, 0, l.output());
    const jobs = await balsam.jobs.filter({ workflow: "MR" }).list();
    assert.equal(jobs.length, 40);
    for (const j of jobs) {
      assert.equal(j.state, "JOB_FINISHED", `${j.name}: ${JSON.stringify(j.stateHistory)}`);
      assert.equal(j.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1);
      assert.equal(j.data.result, Number(j.args));
    }
  });
});
