/**
 * Issue #25: a Sentinel group (a primary, a replica, 3 Sentinels) fails over
 * in the middle of a run — asked (SENTINEL FAILOVER) or because the primary
 * died (kill -9): the launchers' connections follow the new primary without
 * a restart, every job finishes once, nothing runnable is left without an
 * entry. Each failover has a group of its own; the first group also answers
 * for a URL naming no watched master and for a wrong password.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { useTestContext, waitFor } from "../support/context.js";
import { ask, startSentinelGroup, type SentinelGroupHandle } from "../support/redis-ha.js";
import { failoverMidRun, openHaRun, type HaRun } from "../support/ha-run.js";
import { JobQueues } from "../../libs/queue/index.js";
import { createRedisClient } from "../../libs/queue/connection.js";
import { parseRedisUrl } from "../../libs/config/index.js";
import { ConfigError } from "../../libs/errors/index.js";

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
  let first: { group: SentinelGroupHandle; run: HaRun };
  before(async () => {
    first = await setUp("_asked");
  });
  after(async () => {
    for (const { group, run } of open) {
      await run.close();
      await group.stop();
    }
  });

  test("a master name no Sentinel watches, a wrong password: one line each, saying which", async () => {
    const { group } = first;
    const refused = async (url: string, message: RegExp) =>
      assert.rejects(JobQueues.connect({ redisUrl: url, connectTimeoutMs: 2000 }), (e: unknown) => e instanceof ConfigError && message.test(e.message) && !e.message.includes(group.password));
    await refused(group.url.replace(/\/balsam$/, "/nosuch"), /^no Sentinel at redis-sentinel:\/\/:\*\*\*@[\d.:,]+\/nosuch watches a master named 'nosuch'$/);
    await refused(group.url.replace(group.password, "wrong"), /^Redis Sentinel at redis-sentinel:\/\/:\*\*\*@[\d.:,]+\/balsam refused the password$/);
  });

  test("SENTINEL FAILOVER: every job finishes once, nothing runnable left without an entry", async () => {
    const { group, run } = first;
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

  test("a Sentinel that stops answering while the primary dies: each connection reconnects to the new primary, none ends", async () => {
    const group = await startSentinelGroup();
    const target = parseRedisUrl(group.url);
    const clients = (["blocking", "producer"] as const).map((role) => {
      const c = createRedisClient(target, role, 5000);
      c.on("error", () => undefined);
      return { role, c, ended: false };
    });
    for (const x of clients) {
      x.c.once("end", () => (x.ended = true));
      await x.c.connect();
    }
    try {
      // The first Sentinel of the URL, the one the clients asked, stops answering
      // (SIGSTOP: it still accepts); reconnects that ask it must move on, and a
      // failover announced meanwhile must not abandon them.
      const old = await group.primary();
      const stalled = group.sentinels[0]!;
      stalled.pause();
      old.kill();
      await waitFor(
        async () => {
          const views = await Promise.all(group.sentinels.slice(1).map((s) => ask(s.port, group.password, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", group.masterName).catch(() => null)));
          return views.every((v) => Number((v as string[] | null)?.[1]) !== old.port);
        },
        30_000,
        "the two answering Sentinels to name a new primary",
        100,
      );
      // Long enough for a round of the clients' reconnects to reach the stopped Sentinel.
      await waitFor(async () => clients.every((x) => x.c.status !== "ready"), 10_000, "the clients to be reconnecting");
      stalled.resume();
      for (const x of clients) {
        await waitFor(async () => x.ended || (x.c.status === "ready" && (await x.c.ping().catch(() => "")) === "PONG"), 30_000, `the ${x.role} connection to answer again`, 100);
        assert.equal(x.ended, false, `the ${x.role} connection ended for good`);
        assert.match(String(await x.c.info("replication")), /role:master/, `the ${x.role} connection is on the new primary`);
      }
    } finally {
      for (const x of clients) x.c.disconnect();
      await group.stop();
    }
  });
});
