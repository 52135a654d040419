import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { useCliFixture } from "../support/fixture.js";
import { JobsApi } from "../../libs/client/jobs.js";
import { JobQueues } from "../../libs/queue/index.js";
import { createApp } from "../../libs/store/index.js";
import { startRedis, type ServerHandle } from "../../services/dbserver/servers.js";
import { coll } from "../../libs/store/collections.js";

/**
 * A command whose first write lands and whose second is refused changes
 * nothing (README: "a failed command changes nothing"). Redis refusing
 * writes after MongoDB took the jobs is made real and deterministic with a
 * redis-server of this file's own at `maxmemory 1` and `noeviction`: every
 * write is answered OOM, while reads (PING, SMEMBERS) still work.
 */
let full: ServerHandle | undefined;
let fullQueues: JobQueues | undefined;
// The database on the shared MongoDB, its queues on the refusing Redis.
const f = useCliFixture("halfdone", {
  servers: async (dir) => {
    full = await startRedis({ dir: join(dir, "redis"), appendOnly: false });
    fullQueues = await JobQueues.connect({ redisUrl: full.url, prefix: ctx.prefix });
    return {
      redisUrl: full.url,
      stop: async () => {
        await fullQueues?.close();
        await full?.stop();
      },
    };
  },
});
const { ctx } = f;

f.setup(async () => {
  await createApp(ctx.store, { name: "AMBS", executable: "/bin/true" });
});

async function refuseWrites(yes: boolean): Promise<void> {
  await fullQueues!.connection.config("SET", "maxmemory", yes ? "1" : "0");
}

function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line on stderr, got: ${stderr}`);
  return lines[0]!;
}

describe("Redis refusing writes after MongoDB took the jobs", () => {
  test("balsam job: exit 1, one line saying nothing was added, no job left in MongoDB", async () => {
    await refuseWrites(true);
    const r = await f.db.run(["job", "--yes", "--name", "x", "--application", "AMBS", "--workflow", "TEST"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(oneLine(r.stderr), /^balsam: nothing was added: Redis refused the queue entries: OOM command not allowed/);
    assert.equal(r.stdout, "");
    assert.equal(await coll(ctx.store).jobs.countDocuments(), 0);
  });

  test("make_dummies 5: exit 1, no dummy job and no dummy app left", async () => {
    await refuseWrites(true);
    const r = await f.db.run(["make_dummies", "5"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(oneLine(r.stderr), /^balsam: nothing was added: Redis refused the queue entries: OOM/);
    assert.equal(r.stdout, "");
    assert.equal(await coll(ctx.store).jobs.countDocuments(), 0);
    assert.deepEqual((await coll(ctx.store).apps.find({}).toArray()).map((a) => a.name), ["AMBS"]);
  });

  test("the retry once Redis takes writes again adds the job once", async () => {
    await refuseWrites(false);
    const r = await f.db.run(["job", "--yes", "--name", "x", "--application", "AMBS", "--workflow", "TEST"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await coll(ctx.store).jobs.find({}).toArray()).map((j) => [j._id, j.state]), [[r.stdout.trim(), "READY"]]);
    assert.equal(await fullQueues!.pending("TEST"), 1);
    await coll(ctx.store).jobs.deleteMany({});
    await fullQueues!.obliterate("TEST");
  });

  test("jobs.addChunks: the API says the same and leaves nothing", async () => {
    await refuseWrites(true);
    const jobs = new JobsApi(ctx.store, fullQueues!);
    await assert.rejects(
      jobs.addChunks([[{ name: "a", workflow: "CH", application: "AMBS" }]]),
      /^BalsamError: nothing was added: Redis refused the queue entries: OOM/,
    );
    assert.equal(await coll(ctx.store).jobs.countDocuments(), 0);
    await refuseWrites(false);
  });
});

describe("jobs.addChunks is all or nothing across chunks", () => {
  test("a later chunk that fails takes the earlier chunks back, and its own error is the one thrown", async () => {
    const jobs = new JobsApi(ctx.store, ctx.queues);
    const ok = [0, 1, 2].map((i) => ({ name: `ok${i}`, workflow: "CHUNKS", application: "AMBS" }));
    await assert.rejects(jobs.addChunks([ok, [{ name: "bad", workflow: "CHUNKS", application: "NOPE" }]]), (err: Error) => {
      assert.equal(err.name, "NotFoundError");
      assert.equal(err.message, "no app named 'NOPE'");
      return true;
    });
    assert.equal(await coll(ctx.store).jobs.countDocuments({ workflow: "CHUNKS" }), 0);
    assert.equal(await ctx.queues.pending("CHUNKS"), 0);
    assert.equal(await jobs.addChunks([ok, ok.map((s) => ({ ...s, name: `${s.name}b` }))]), 6);
    assert.equal(await coll(ctx.store).jobs.countDocuments({ workflow: "CHUNKS" }), 6);
  });

  test("taking back never touches a job the add did not make: a duplicate id stays as it was", async () => {
    const jobs = new JobsApi(ctx.store, ctx.queues);
    const [first] = await jobs.addMany([{ name: "first", workflow: "DUP", application: "AMBS" }]);
    await assert.rejects(
      jobs.addMany([
        { name: "new", workflow: "DUP", application: "AMBS" },
        { _id: first!._id, name: "same id", workflow: "DUP", application: "AMBS" },
      ]),
      /^BalsamError: nothing was added: .*duplicate key/,
    );
    assert.deepEqual((await coll(ctx.store).jobs.find({ workflow: "DUP" }).toArray()).map((j) => [j._id, j.name, j.state]), [[first!._id, "first", "READY"]]);
    assert.equal(await ctx.queues.pending("DUP"), 1);
  });
});
