import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, readFileSync, statSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runBalsam } from "../support/cli.js";
import { isAlive } from "../../services/dbserver/servers.js";

// A *local* database: no URLs given to init, so `balsam server` runs its own
// redis-server and MongoDB-wire server from the database directory.
describe("balsam init + server on a fresh local database", () => {
  let root: string;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const run = (args: string[]) => runBalsam(args, { env });

  before(() => {
    root = mkdtempSync(join(tmpdir(), "balsam-local-"));
    dir = join(root, "db");
    env = { BALSAM_HOME: join(root, "home"), BALSAM_DB_PATH: dir };
  });
  after(async () => {
    await run(["server", "--stop"]);
    rmSync(root, { recursive: true, force: true });
  });

  test("init creates the directory, a 0600 settings file with a Redis password, and registers it", async () => {
    const r = await run(["init", dir]);
    assert.equal(r.code, 0, r.stderr);
    const settings = JSON.parse(readFileSync(join(dir, "settings.json"), "utf8")) as Record<string, string>;
    assert.equal(settings.mongoUrl, "local");
    assert.equal(settings.redisUrl, "local");
    assert.ok((settings.redisPassword ?? "").length >= 16);
    assert.equal(statSync(join(dir, "settings.json")).mode & 0o777, 0o600);
    assert.ok(existsSync(join(dir, "data")) && existsSync(join(dir, "log")));
    const list = await run(["which", "--list"]);
    assert.equal(list.stdout.trim(), dir);
    const again = await run(["init", dir]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already a Balsam database/);
  });

  test("server --connect starts both servers; --status shows them up", async () => {
    const r = await run(["server", "--connect"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /started redis-server on 127\.0\.0\.1:\d+ .*, (ferretdb|mongod) on 127\.0\.0\.1:\d+/);
    const s = await run(["server", "--status"]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /mongo\s+local mongodb:\/\/balsam:\*\*\*@127\.0\.0\.1:\d+\/\?authSource=admin up pid \d+/);
    assert.match(s.stdout, /redis\s+local redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ up pid \d+/);
    const info = JSON.parse(readFileSync(join(dir, "server-info.json"), "utf8")) as { mongo: { pid: number }; redis: { pid: number } };
    assert.ok(isAlive(info.mongo.pid) && isAlive(info.redis.pid));
    const again = await run(["server", "--connect"]);
    assert.match(again.stdout, /servers already running/);
  });

  test("commands work against the local servers; which shows them", async () => {
    const app = await run(["app", "--name", "sim", "--executable", "/bin/true"]);
    assert.equal(app.code, 0, app.stderr);
    const job = await run(["job", "--name", "j1", "--workflow", "W", "--application", "sim", "--yes"]);
    assert.equal(job.code, 0, job.stderr);
    const w = await run(["which"]);
    assert.match(w.stdout, new RegExp(`BALSAM_DB_PATH=${dir}`));
    assert.match(w.stdout, /mongo: local .* up/);
  });

  test("server --stop stops them; the next command starts them again and says so", async () => {
    const info = JSON.parse(readFileSync(join(dir, "server-info.json"), "utf8")) as { mongo: { pid: number }; redis: { pid: number } };
    const r = await run(["server", "--stop"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /stopped redis-server \(pid \d+\), (ferretdb|mongod) \(pid \d+\)/);
    assert.ok(!isAlive(info.mongo.pid) && !isAlive(info.redis.pid));
    const s = await run(["server", "--status"]);
    assert.match(s.stdout, /mongo\s+local - down/);
    const ls = await run(["ls"]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stderr, /^balsam: started the local servers of .*: redis-server on .*, (ferretdb|mongod) on .*\n$/);
    assert.match(ls.stdout, /j1/, "the data survived the restart");
  });

  test("log shows the servers' log files", async () => {
    const r = await run(["log", "-n", "5"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /==> .*log\/(mongo|redis)\.log <==/);
  });

  test("server --reset restarts the servers and keeps the data, as 0.x's did", async () => {
    const before = JSON.parse(readFileSync(join(dir, "server-info.json"), "utf8")) as { mongo: { pid: number }; redis: { pid: number } };
    const r = await run(["server", "--reset"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^restarted: stopped redis-server \(pid \d+\), (ferretdb|mongod) \(pid \d+\); started redis-server/);
    assert.ok(!isAlive(before.mongo.pid) && !isAlive(before.redis.pid), "the old servers were stopped");
    const ls = await run(["ls"]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /j1/, "the data survived --reset");
  });

  test("server --delete-all-data refuses off a terminal without --yes, then wipes with it", async () => {
    const refused = await run(["server", "--delete-all-data"]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /add --yes/);
    assert.match((await run(["ls"])).stdout, /j1/, "nothing was deleted");
    const r = await run(["server", "--delete-all-data", "--yes"]);
    assert.equal(r.code, 0, r.stderr);
    const ls = await run(["ls", "--json"]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.deepEqual(JSON.parse(ls.stdout), []);
  });

  test("server takes exactly one action", async () => {
    const r = await run(["server", "--connect", "--stop"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /exactly one of/);
  });
});
