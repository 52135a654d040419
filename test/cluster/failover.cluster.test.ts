/**
 * Issue #25: a Redis Cluster master killed (kill -9) while its workflow
 * runs: its replica takes over, the launchers' connections follow without a
 * restart, every job finishes once. And the asynchronous replication gap made
 * on purpose — entries the master took while its replica was stopped die
 * with it — is healed from MongoDB by the launcher's reconciliation.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { useTestContext, waitFor } from "../support/context.js";
import { ask, startRedisCluster, type RedisClusterHandle } from "../support/redis-ha.js";
import { addJobs, allExited, assertFinishedOnce, failoverMidRun, openHaRun, runnableWithoutEntry, type HaRun } from "../support/ha-run.js";
import { queueName } from "../../libs/queue/index.js";

const ctx = useTestContext("clusterfo");
let cluster: RedisClusterHandle;
let run: HaRun;

/** The slot of a workflow's queue keys. */
const slotOf = async (wf: string) => Number(await ask(cluster.nodes[0]!.port, cluster.password, "CLUSTER", "KEYSLOT", queueName(wf)));

/** Kills the master serving `wf`'s slot and returns once its replica serves it, in a healthy cluster. */
async function killMasterOf(wf: string, beforeKill: () => Promise<void> = async () => undefined): Promise<void> {
  const slot = await slotOf(wf);
  const { master, replica } = await cluster.ownerOf(slot);
  assert.ok(replica, `the master of slot ${slot} has no replica`);
  await beforeKill();
  master.kill();
  replica.resume();
  await waitFor(async () => (await cluster.ownerOf(slot).catch(() => undefined))?.master.port === replica.port, 30_000, "the replica to take over", 100);
  await cluster.waitHealthy();
}

describe("a Redis Cluster master lost", () => {
  before(async () => {
    cluster = await startRedisCluster();
    run = await openHaRun(ctx, cluster.url);
  });
  after(async () => {
    await run?.close();
    await cluster?.stop();
  });

  test("kill -9 of the master holding a running workflow's queue: the replica takes over, the same launchers finish every job once, nothing runnable is left without an entry", async () => {
    const r = await failoverMidRun(run, "KILLED", 2000, () => killMasterOf("KILLED"));
    console.log(`# ${r.finishedBefore} of 2000 finished at the kill; the new primary serving after ${r.failoverMs} ms, 100 more jobs finished ${r.resumedMs} ms after it began; ${r.ranTwice} job(s) ran twice, each recorded finished once; entries left over: ${JSON.stringify(r.leftOver)}`);
  });

  test("entries lost in the replication gap (master killed while its replica was stopped) are re-offered from MongoDB; every job finishes once", async () => {
    const wf = "GAP";
    await addJobs(run.balsam, wf, 300, run.app);
    const { master, replica } = await cluster.ownerOf(await slotOf(wf));
    // The replica holds the first 300 entries before it is stopped.
    const offset = async (port: number, field: string) => Number(new RegExp(`${field}:(\\d+)`).exec(String(await ask(port, cluster.password, "INFO", "replication")))?.[1]);
    await waitFor(async () => (await offset(replica!.port, "slave_repl_offset")) >= (await offset(master.port, "master_repl_offset")), 10_000, "the replica to catch up");
    await killMasterOf(wf, async () => {
      // Stopped, and cut off by the master (a stopped replica's kernel would still buffer the stream).
      replica!.pause();
      await ask(master.port, cluster.password, "CLIENT", "KILL", "TYPE", "replica");
      await addJobs(run.balsam, wf, 200, run.app, 300);
    });
    const lost = await runnableWithoutEntry(run.balsam, wf);
    assert.equal(lost.length, 200, "the entries written while the replica was stopped should have died with the master");
    const [l] = run.launchers(1, [wf]);
    await allExited([l!], 180_000);
    assert.match(l!.output(), /nothing arrived while jobs are runnable: re-offered \d+ queue entries/);
    await assertFinishedOnce(run.balsam, wf, 500);
    assert.deepEqual(await runnableWithoutEntry(run.balsam, wf), []);
  });
});
