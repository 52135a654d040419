/**
 * A batch system's SIGTERM ends a launcher in bounded time whatever its
 * servers do: here both servers are frozen (SIGSTOP), so the clean stop's
 * writes never answer, and the launcher must still exit after its grace.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runBalsam } from "../support/cli.js";
import { exitedWithin, startLauncher } from "../support/launcher.js";
import { connect } from "../../libs/client/index.js";
import { isAlive, waitFor } from "../../services/dbserver/servers.js";

describe("SIGTERM with the servers frozen", () => {
  let root: string;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let pids: number[] = [];
  const run = (args: string[]) => runBalsam(args, { env });

  before(async () => {
    root = mkdtempSync(join(tmpdir(), "balsam-stopgrace-"));
    dir = join(root, "db");
    env = { BALSAM_HOME: join(root, "home"), BALSAM_DB_PATH: dir };
    assert.equal((await run(["init", dir])).code, 0);
    assert.equal((await run(["server", "--connect"])).code, 0);
    assert.equal((await run(["app", "--name", "long", "--executable", "/bin/sleep"])).code, 0);
    for (const n of ["a", "b"]) assert.equal((await run(["job", "--yes", "--name", n, "--workflow", "SG", "--application", "long", "--args", "120", "--node-packing-count", "2"])).code, 0);
  });
  after(async () => {
    for (const p of pids) if (isAlive(p)) process.kill(p, "SIGCONT");
    await run(["server", "--stop"]);
    rmSync(root, { recursive: true, force: true });
  });

  test("the launcher exits within its stop grace; its jobs' processes end with it", async () => {
    const l = startLauncher(["--wf-filter", "SG", "--job-mode", "serial"], { ...env, BALSAM_NODELIST: "node1", BALSAM_STOP_GRACE_MS: "3000", BALSAM_KILL_GRACE_MS: "1000" });
    const b = await connect({ dbPath: dir });
    try {
      await waitFor(async () => (await b.jobs.filter({ workflow: "SG", state: "RUNNING" }).count()) === 2, 60_000, "both jobs to run");
    } finally {
      await b.close();
    }
    const info = JSON.parse(readFileSync(join(dir, "server-info.json"), "utf8")) as { mongo: { pid: number }; redis: { pid: number } };
    pids = [info.mongo.pid, info.redis.pid];
    for (const p of pids) process.kill(p, "SIGSTOP");
    const t = Date.now();
    l.child.kill("SIGTERM");
    assert.equal(await exitedWithin(l, 30_000), 1, l.output().slice(-2000));
    assert.ok(Date.now() - t < 15_000, `took ${Date.now() - t} ms`);
    assert.match(l.output(), /not stopped 3000 ms after SIGTERM/);
    for (const p of pids) process.kill(p, "SIGCONT");
  });
});
