/**
 * Issue #25: a Sentinel group (a primary, a replica, 3 Sentinels) fails over
 * in the middle of a run — asked (SENTINEL FAILOVER) or because the primary
 * died (kill -9): the launchers' connections follow the new primary without
 * a restart, every job finishes once, nothing runnable is left without an
 * entry. Each test has a group of its own.
 */
import { test, describe, after } from "node:test";
import { useTestContext, waitFor } from "../support/context.js";
import { ask, startSentinelGroup, type SentinelGroupHandle } from "../support/redis-ha.js";
import { failoverMidRun, openHaRun, type HaRun } from "../support/ha-run.js";

const ctx = useTestContext("sentinel");
const open: Array<{ group: SentinelGroupHandle; run: HaRun }> = [];

async function setUp(tag: string): Promise<{ group: SentinelGroupHandle; run: HaRun }> {
  const group = await startSentinelGroup();
  const run = await openHaRun(ctx, group.url, tag);
  open.push({ group, run });
  return { group, run };
}

/** Returns once every Sentinel names another primary than `old`, and it answers as one. */
async function newPrimary(group: SentinelGroupHandle, oldPort: number): Promise<void> {
  await waitFor(
    async () => {
      const views = await Promise.all(group.sentinels.map((s) => ask(s.port, group.password, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", group.masterName).catch(() => null)));
      const ports = new Set(views.map((v) => Number((v as string[] | null)?.[1])));
      if (ports.size !== 1 || ports.has(oldPort)) return false;
      return /role:master/.test(String(await ask([...ports][0]!, group.password, "INFO", "replication").catch(() => "")));
    },
    30_000,
    "the Sentinels to agree on a new primary",
    100,
  );
}

describe("a Sentinel failover in the middle of a run", () => {
  after(async () => {
    for (const { group, run } of open) {
      await run.close();
      await group.stop();
    }
  });

  test("SENTINEL FAILOVER: every job finishes once, nothing runnable left without an entry", async () => {
    const { group, run } = await setUp("_asked");
    const r = await failoverMidRun(run, "ASKED", 2000, async () => {
      const old = await group.primary();
      await ask(group.sentinels[0]!.port, group.password, "SENTINEL", "FAILOVER", group.masterName);
      await newPrimary(group, old.port);
    });
    console.log(`# ${r.finishedBefore} of 2000 finished at the failover; the new primary serving after ${r.failoverMs} ms, 100 more jobs finished ${r.resumedMs} ms after it began; ${r.ranTwice} job(s) ran twice, each recorded finished once; entries left over: ${JSON.stringify(r.leftOver)}`);
  });

  test("kill -9 of the primary: the Sentinels promote the replica; every job finishes once, nothing runnable left without an entry", async () => {
    const { group, run } = await setUp("_killed");
    const r = await failoverMidRun(run, "PKILLED", 2000, async () => {
      const old = await group.primary();
      old.kill();
      await newPrimary(group, old.port);
    });
    console.log(`# ${r.finishedBefore} of 2000 finished at the kill; the new primary serving after ${r.failoverMs} ms, 100 more jobs finished ${r.resumedMs} ms after it began; ${r.ranTwice} job(s) ran twice, each recorded finished once; entries left over: ${JSON.stringify(r.leftOver)}`);
  });
});
