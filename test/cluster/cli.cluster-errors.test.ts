/**
 * Issue #25: a bad cluster URL, an unreachable cluster, a cluster with a
 * slot uncovered (and a plain Redis named as a cluster, a braced prefix on a
 * cluster): one clear line each, exit code 1, nothing changed — no database
 * directory made, no job in MongoDB, no queue entry.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../support/context.js";
import { runBalsam, type CliDb } from "../support/cli.js";
import { useCliFixture } from "../support/fixture.js";
import { ask, startRedisCluster, type RedisClusterHandle } from "../support/redis-ha.js";
import { createApp } from "../../libs/store/index.js";
import { freePort } from "../../services/dbserver/servers.js";
import { coll } from "../../libs/store/collections.js";

const f = useCliFixture("clustererr");
const { ctx } = f;
let cluster: RedisClusterHandle;

/** A database directory whose settings name `redisUrl`, on this file's MongoDB database (so a job added would show). */
async function dbWith(redisUrl: string): Promise<CliDb> {
  const db = await f.anotherDb();
  const file = join(db.dir, "settings.json");
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), redisUrl }));
  return db;
}

/** `balsam job` on `db`: exit 1, one line matching `message`, no job added. */
async function refusedJob(db: CliDb, message: RegExp): Promise<void> {
  const r = await db.run(["job", "--yes", "--name", "x", "--application", "noop", "--workflow", "W"]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, "");
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, message);
  assert.doesNotMatch(r.stderr, new RegExp(cluster.password));
  assert.equal(await coll(ctx.store).jobs.countDocuments(), 0, "a job was added");
}

describe("a cluster that cannot serve: one line, exit code 1, nothing changed", () => {
  before(async () => {
    cluster = await startRedisCluster();
    await createApp(ctx.store, { name: "noop", executable: "/bin/true" });
  });
  after(async () => {
    await cluster?.stop();
  });

  test("balsam init with a bad cluster URL, or a braced prefix on a cluster: nothing made", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["--redis-url", `redis-cluster://:${cluster.password}@`], /^balsam: Redis URL 'redis-cluster:\/\/:\*\*\*@' is not valid: it names no host \(use redis:\/\//],
      [["--redis-url", "redis-cluster://127.0.0.1:7000/1"], /is not valid: a cluster has no database number/],
      [["--redis-url", "redis-clustr://127.0.0.1:7000"], /is not valid: unknown scheme 'redis-clustr:\/\/'/],
      [["--redis-url", cluster.url, "--queue-prefix", "{balsam}"], /^balsam: queue prefix '\{balsam\}' has braces: on Redis Cluster they would put every workflow's queue in one hash slot/],
    ];
    for (const [args, message] of cases) {
      const dir = join(f.dir, "db");
      const r = await runBalsam(["init", dir, ...args], { env: { BALSAM_HOME: join(f.dir, "home") } });
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, new RegExp(cluster.password));
      assert.equal(existsSync(dir), false, "init made the directory");
    }
  });

  test("a bad cluster URL in settings.json", async () => {
    await refusedJob(await dbWith("redis-cluster://:pw@127.0.0.1:0"), /^balsam: Redis URL 'redis-cluster:\/\/:\*\*\*@127\.0\.0\.1:0' is not valid: '127\.0\.0\.1:0' has no valid port/);
  });

  test("an unreachable cluster", async () => {
    const url = `redis-cluster://:${cluster.password}@127.0.0.1:${await freePort()},127.0.0.1:${await freePort()}`;
    await refusedJob(await dbWith(url), /^balsam: cannot reach Redis Cluster at redis-cluster:\/\/:\*\*\*@127\.0\.0\.1:\d+,127\.0\.0\.1:\d+ \(start it/);
  });

  test("a plain Redis named as a cluster", async () => {
    const plain = /@?([\d.]+:\d+)/.exec(ctx.redisUrl.replace(/^redis:\/\//, ""))![1]!;
    await refusedJob(await dbWith(`redis-cluster://${plain}`), /^balsam: the Redis at redis-cluster:\/\/[\d.:]+ is not a cluster node \(cluster support disabled\)/);
  });

  test("a cluster with a slot uncovered (CLUSTER DELSLOTS 0 on every node); served again, the same command works", async () => {
    const db = await dbWith(cluster.url);
    const { master } = await cluster.ownerOf(0);
    const delslots = () => Promise.all(cluster.nodes.map((n) => ask(n.port, cluster.password, "CLUSTER", "DELSLOTS", "0").catch(() => undefined)));
    await delslots();
    await waitFor(
      async () => {
        if ((await Promise.all(cluster.nodes.map((n) => ask(n.port, cluster.password, "CLUSTER", "INFO")))).every((i) => /cluster_state:fail/.test(String(i)))) return true;
        // A ping the owner sent before its own DELSLOTS, still claiming slot 0, gives it back to a node that had
        // deleted it (a master's claim fills an unassigned slot), which then stays ok: deleted again until all fail.
        await delslots();
        return false;
      },
      10_000,
      "every node to say cluster_state:fail",
    );
    await refusedJob(db, /^balsam: Redis Cluster at redis-cluster:\/\/:\*\*\*@[\d.:,]+ does not serve every slot \(cluster_state:fail, 16383 of 16384 slots served\)/);
    await ask(master.port, cluster.password, "CLUSTER", "ADDSLOTS", "0");
    await cluster.waitHealthy();
    const r = await db.run(["job", "--yes", "--name", "x", "--application", "noop", "--workflow", "W"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await coll(ctx.store).jobs.countDocuments(), 1);
  });
});
