/**
 * Issue #25: the queues on a real Redis Cluster (3 masters, 3 replicas).
 * Each workflow's keys share one slot of their own, so workflows spread
 * over the shards; 2 launchers run 2 workflows of 2,000 jobs each, every job
 * once; the pub/sub channels (finished, kill, new workflows) work across
 * the cluster's nodes.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { useTestContext, waitFor } from "../support/context.js";
import { startRedisCluster, type RedisClusterHandle, ask } from "../support/redis-ha.js";
import { addJobs, allExited, assertFinishedOnce, openHaRun, runnableWithoutEntry, whereKeysLive, type HaRun } from "../support/ha-run.js";
import { CHUNK_SIZE, FINISHED_CHANNEL, KILL_CHANNEL, parseFinished } from "../../libs/client/index.js";
import { JobQueues, WORKFLOWS_CHANNEL, queueName } from "../../libs/queue/index.js";

const ctx = useTestContext("cluster");
const N = 2000;
let cluster: RedisClusterHandle;
let run: HaRun;
/** Two workflow names whose hash tags fall on different masters. */
let wfs: [string, string];

describe("the queues on a Redis Cluster", () => {
  before(async () => {
    cluster = await startRedisCluster();
    run = await openHaRun(ctx, cluster.url);
    // Names are hashed by their tag alone; pick the first two whose slots two different masters serve.
    const owners = new Map<number, string>();
    for (let i = 0; owners.size < 2; i++) {
      const slot = Number(await ask(cluster.nodes[0]!.port, cluster.password, "CLUSTER", "KEYSLOT", queueName(`wf${i}`)));
      const port = (await cluster.ownerOf(slot)).master.port;
      if (!owners.has(port)) owners.set(port, `wf${i}`);
    }
    wfs = [...owners.values()] as [string, string];
  });
  after(async () => {
    await run?.close();
    await cluster?.stop();
  });

  test("2 workflows x 2,000 jobs, 2 launchers: each workflow's keys on one slot, the two on different masters; every job runs and finishes once, every finish announced", async () => {
    const [a, b] = wfs;
    for (const wf of wfs) await addJobs(run.balsam, wf, N, run.app);
    const where = await whereKeysLive(run.balsam.queues, wfs);
    for (const wf of wfs) {
      const w = where.get(wf)!;
      // A key per entry: the jobs were added together, in chunks of CHUNK_SIZE.
      assert.ok(w.keys >= N / CHUNK_SIZE, `${wf}: ${w.keys} keys found`);
      assert.equal(w.slots.size, 1, `${wf}'s keys are spread over slots ${[...w.slots].slice(0, 5).join(", ")}`);
      assert.equal(w.ports.size, 1, `${wf}'s keys are on ${w.ports.size} masters`);
    }
    assert.notEqual([...where.get(a)!.ports][0], [...where.get(b)!.ports][0], "the two workflows' queues are on the same master");
    // The slot's owner as the cluster itself says it (CLUSTER NODES) is where the keys were found.
    const slotA = [...where.get(a)!.slots][0]!;
    assert.equal((await cluster.ownerOf(slotA)).master.port, [...where.get(a)!.ports][0]);

    const heard = new Set<string>();
    const off = await run.balsam.queues.subscribe(FINISHED_CHANNEL, (msg) => {
      for (const f of parseFinished(msg)) heard.add(f.id);
    });
    try {
      const ls = run.launchers(2, wfs);
      await allExited(ls, 240_000);
      for (const wf of wfs) await assertFinishedOnce(run.balsam, wf, N);
      const runs = run.runs();
      assert.equal(runs.size, 2 * N);
      assert.deepEqual([...runs].filter(([, n]) => n !== 1).slice(0, 3), [], "jobs run more than once");
      await waitFor(() => heard.size === 2 * N, 10_000, `every finish announced (heard ${heard.size})`);
      for (const wf of wfs) {
        assert.deepEqual(await runnableWithoutEntry(run.balsam, wf), []);
        assert.equal(await run.balsam.queues.pending(wf), 0, `${wf}: entries left in the queue`);
      }
    } finally {
      await off();
    }
  });

  test("pub/sub across the cluster: kill, finished and new-workflow messages published by one client reach another's subscriptions", async () => {
    const other = await JobQueues.connect({ redisUrl: cluster.url, prefix: ctx.prefix });
    try {
      const got: string[] = [];
      const offs = await Promise.all([KILL_CHANNEL, FINISHED_CHANNEL, WORKFLOWS_CHANNEL].map((ch) => run.balsam.queues.subscribe(ch, (m) => got.push(`${ch}:${m}`))));
      await other.publish(KILL_CHANNEL, "job-1");
      await other.publish(FINISHED_CHANNEL, "{}");
      // A workflow's first entry tells the new-workflow channel.
      await other.enqueue([{ id: "brand-new", workflow: "brand-new-wf", attempts: 0 }]);
      await waitFor(() => got.length >= 3, 5000, `three messages (got ${got.join(", ")})`);
      assert.deepEqual(got.sort(), [`${FINISHED_CHANNEL}:{}`, `${KILL_CHANNEL}:job-1`, `${WORKFLOWS_CHANNEL}:new`]);
      for (const off of offs) await off();
      await other.obliterate("brand-new-wf");
    } finally {
      await other.close();
    }
  });
});
