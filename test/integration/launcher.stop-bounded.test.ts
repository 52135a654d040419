/**
 * A batch system's SIGTERM, or the launcher's own time limit, ends a launcher
 * in bounded time whatever its servers do: here both servers are frozen
 * (SIGSTOP), so the clean stop's writes never answer, and the launcher must
 * still exit after its grace.
 */
import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { useLocalDb } from "../support/local-db.js";
import { exitedWithin, startLauncher } from "../support/launcher.js";
import { connect } from "../../libs/client/index.js";
import { isAlive, waitFor } from "../../services/dbserver/servers.js";

describe("a stop with the servers frozen", () => {
  let pids: number[] = [];
  const db = useLocalDb("stopgrace", {
    connect: true,
    beforeStop: () => {
      for (const p of pids) if (isAlive(p)) process.kill(p, "SIGCONT");
    },
  });
  before(async () => {
    assert.equal((await db.run(["app", "--name", "long", "--executable", "/bin/sleep"])).code, 0);
    for (const n of ["a", "b"]) assert.equal((await db.run(["job", "--yes", "--name", n, "--workflow", "SG", "--application", "long", "--args", "120", "--node-packing-count", "2"])).code, 0);
  });

  test("the launcher exits within its stop grace; its jobs' processes end with it", async () => {
    const l = startLauncher(["--wf-filter", "SG", "--job-mode", "serial"], { ...db.env, BALSAM_NODELIST: "node1", BALSAM_STOP_GRACE_MS: "3000", BALSAM_KILL_GRACE_MS: "1000" });
    const b = await connect({ dbPath: db.dir });
    try {
      await waitFor(async () => (await b.jobs.filter({ workflow: "SG", state: "RUNNING" }).count()) === 2, 60_000, "both jobs to run");
    } finally {
      await b.close();
    }
    const info = db.serverInfo();
    pids = [info.mongo.pid, info.redis.pid];
    for (const p of pids) process.kill(p, "SIGSTOP");
    const t = Date.now();
    l.child.kill("SIGTERM");
    assert.equal(await exitedWithin(l, 30_000), 1, l.output().slice(-2000));
    assert.ok(Date.now() - t < 15_000, `took ${Date.now() - t} ms`);
    assert.match(l.output(), /not stopped 3000 ms after SIGTERM/);
    for (const p of pids) process.kill(p, "SIGCONT");
  });

  test("a launcher that stops on its own (its time limit) with the servers frozen exits within its stop grace too", async () => {
    const l = startLauncher(["--wf-filter", "SELFSTOP", "--job-mode", "serial", "--persistent", "--time-limit-minutes", "0.1"], { ...db.env, BALSAM_NODELIST: "node1", BALSAM_STOP_GRACE_MS: "3000" });
    await waitFor(() => /started: serial mode/.test(l.output()), 30_000, "the launcher to start");
    const info = db.serverInfo();
    pids = [info.mongo.pid, info.redis.pid];
    for (const p of pids) process.kill(p, "SIGSTOP");
    // The time limit (6 s from its start) stops it; closing its queue consumers waits on the frozen Redis.
    assert.equal(await exitedWithin(l, 40_000), 1, l.output().slice(-2000));
    assert.match(l.output(), /stopping: time limit reached/);
    assert.match(l.output(), /not stopped 3000 ms after it began to stop \(time limit reached\)/);
    for (const p of pids) process.kill(p, "SIGCONT");
  });
});
