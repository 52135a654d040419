/**
 * The doors of a local database, tried as an intruder would: a client with no
 * password or a wrong one, another local user (uid 65534 through `setpriv`),
 * and the CLI's own output, which must never show a password. The database
 * sits in a directory whose name has `%41`, `?`, `#` and a space, which
 * FerretDB used to mangle (its data went to `.../pA...`).
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { runBalsam } from "../support/cli.js";

interface Info {
  mongo: { url: string; port: number; pid: number };
  redis: { url: string; port: number };
}

/** Runs `cmd` as uid/gid 65534 (nobody); its exit status, 0 when it could. */
function asNobody(cmd: string[]): number {
  try {
    execFileSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--", ...cmd], { stdio: "ignore" });
    return 0;
  } catch (err) {
    return (err as { status?: number }).status ?? 1;
  }
}

async function canRead(url: string): Promise<boolean> {
  const c = new MongoClient(url, { serverSelectionTimeoutMS: 3000, connectTimeoutMS: 3000 });
  try {
    await c.connect();
    await c.db("balsam").collection("apps").find({}).toArray();
    return true;
  } catch {
    return false;
  } finally {
    await c.close().catch(() => undefined);
  }
}

describe("a local database's doors", () => {
  let root: string;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let settings: { mongoPassword: string; redisPassword: string };
  let info: Info;
  const run = (args: string[]) => runBalsam(args, { env });

  before(async () => {
    root = mkdtempSync(join(tmpdir(), "balsam-doors-"));
    // Others may walk to the database: only its own modes keep them out.
    chmodSync(root, 0o755);
    dir = join(root, "p%41?#x db");
    env = { BALSAM_HOME: join(root, "home"), BALSAM_DB_PATH: dir };
    const init = await run(["init", dir]);
    assert.equal(init.code, 0, init.stderr);
    const up = await run(["server", "--connect"]);
    assert.equal(up.code, 0, up.stderr);
    settings = JSON.parse(readFileSync(join(dir, "settings.json"), "utf8")) as typeof settings;
    info = JSON.parse(readFileSync(join(dir, "server-info.json"), "utf8")) as Info;
  });
  after(async () => {
    await run(["server", "--stop"]);
    rmSync(root, { recursive: true, force: true });
  });

  test("init generates a MongoDB password beside the Redis one", () => {
    assert.ok(settings.mongoPassword.length >= 16);
    assert.notEqual(settings.mongoPassword, settings.redisPassword);
  });

  test("the MongoDB-wire server refuses a client without the password, or with a wrong one", async () => {
    assert.equal(await canRead(`mongodb://127.0.0.1:${info.mongo.port}`), false, "no password");
    assert.equal(await canRead(`mongodb://balsam:wrong@127.0.0.1:${info.mongo.port}/?authSource=admin`), false, "wrong password");
    assert.equal(await canRead(`mongodb://balsam:${encodeURIComponent(settings.mongoPassword)}@127.0.0.1:${info.mongo.port}/?authSource=admin`), true);
    // And the CLI, which reads the password from settings.json, works.
    const app = await run(["app", "--name", "sim", "--executable", "/bin/true"]);
    assert.equal(app.code, 0, app.stderr);
  });

  test("a wrong or missing MongoDB password is said as such, in one line", async () => {
    const redisUrl = `redis://:${encodeURIComponent(settings.redisPassword)}@127.0.0.1:${info.redis.port}`;
    for (const [name, mongoUrl, message] of [
      ["wrong", `mongodb://balsam:wrong@127.0.0.1:${info.mongo.port}/?authSource=admin`, /^balsam: the MongoDB server at mongodb:\/\/balsam:\*\*\*@127\.0\.0\.1:\d+\/\?authSource=admin refused the password \(/],
      ["none", `mongodb://127.0.0.1:${info.mongo.port}`, /^balsam: the MongoDB server at mongodb:\/\/127\.0\.0\.1:\d+ requires a password and none was given \(/],
    ] as const) {
      const other = join(root, `client-${name}`);
      assert.equal((await runBalsam(["init", other, "--mongo-url", mongoUrl, "--redis-url", redisUrl], { env })).code, 0);
      const r = await runBalsam(["ls"], { env: { ...env, BALSAM_DB_PATH: other } });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.ok(!r.stderr.includes("wrong"), "the password was printed");
    }
  });

  test("the password is not on the server's command line, which every user can read", () => {
    const cmdline = readFileSync(`/proc/${info.mongo.pid}/cmdline`, "utf8");
    assert.ok(!cmdline.includes(settings.mongoPassword), cmdline.replace(/\0/g, " "));
  });

  test("another local user can read neither the secrets nor the data", () => {
    for (const f of ["settings.json", "server-info.json"]) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    for (const d of ["data/servers/mongo", "data/servers/redis"]) assert.equal(statSync(join(dir, d)).mode & 0o777, 0o700, d);
    assert.notEqual(asNobody(["cat", join(dir, "settings.json")]), 0, "nobody read settings.json");
    assert.notEqual(asNobody(["cat", join(dir, "server-info.json")]), 0, "nobody read server-info.json");
    assert.notEqual(asNobody(["ls", join(dir, "data", "servers", "mongo")]), 0, "nobody listed the MongoDB data");
    // The control: nobody can run commands at all, so the refusals above are the modes'.
    assert.equal(asNobody(["ls", root]), 0);
  });

  test("the data live in the database's own directory, whatever its name", () => {
    const files = readdirSync(join(dir, "data", "servers", "mongo"));
    assert.ok(files.some((f) => f.endsWith(".sqlite")), `no SQLite files in the data directory: ${files.join(", ")}`);
    assert.ok(!existsSync(join(root, "pA")) && !existsSync(join(root, "pA?#x db")) && !existsSync(join(root, "p%41")));
  });

  test("no command prints a password", async () => {
    const outs = [await run(["which"]), await run(["server", "--status"]), await run(["ls", "queues"])];
    for (const r of outs) {
      const text = r.stdout + r.stderr;
      assert.ok(!text.includes(settings.mongoPassword), `MongoDB password shown: ${text}`);
      assert.ok(!text.includes(settings.redisPassword), `Redis password shown: ${text}`);
    }
    assert.match(outs[1]!.stdout, /mongodb:\/\/balsam:\*\*\*@127\.0\.0\.1:\d+/);
  });
});
