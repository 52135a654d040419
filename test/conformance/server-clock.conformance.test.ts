/**
 * The server-clock behaviours leases rely on (DESIGN §6.2: a lease's end is
 * computed on the database server's clock and judged on it): `hello` says the
 * server's time, and a date range condition on a nested field decides a
 * conditional update. What FerretDB 1.24 lacks, measured: `$$NOW` (an
 * aggregation returns the literal string "$$NOW"; `$expr` with `$lt` is
 * refused) and pipeline updates — so no lease end can be computed inside a
 * write, and libs/store/clock.ts asks `hello` instead.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { useTestContext, waitFor } from "../support/context.js";
import { coll } from "../../libs/store/collections.js";

const ctx = useTestContext("clock");

async function serverNow(): Promise<{ at: Date; sent: number; answered: number }> {
  const sent = Date.now();
  const r = (await coll(ctx.store).db.command({ hello: 1 })) as { localTime?: unknown };
  const answered = Date.now();
  assert.ok(r.localTime instanceof Date, `hello answered localTime ${String(r.localTime)}`);
  return { at: r.localTime, sent, answered };
}

describe("the server's clock", () => {
  test("hello says the server's current time, and it moves with it", async () => {
    const a = await serverNow();
    // The test servers share this machine's clock: the answer lies within the request's round trip (ms precision).
    assert.ok(a.at.getTime() >= a.sent - 1 && a.at.getTime() <= a.answered + 1, `${a.at.toISOString()} not within [${a.sent}, ${a.answered}]`);
    let b = a;
    await waitFor(async () => (b = await serverNow()).sent >= a.answered + 200, 5000, "200 ms to pass");
    assert.ok(b.at.getTime() - a.at.getTime() >= 199, `the server's time moved ${b.at.getTime() - a.at.getTime()} ms in 200`);
  });

  test("a conditional update on a nested date ($lt, recovery's lapse test) matches only what ended before it, once", async () => {
    const c = coll(ctx.store).db.collection<{ _id: string; lock: { owner: string; until: Date } | null }>("clock_leases");
    const { at: now } = await serverNow();
    const lapsed = new Date(now.getTime() - 1);
    const live = new Date(now.getTime() + 1);
    await c.insertMany([
      { _id: "lapsed", lock: { owner: "a", until: lapsed } },
      { _id: "live", lock: { owner: "a", until: live } },
      { _id: "free", lock: null },
    ]);
    const filter = (id: string) => ({ _id: id, "lock.owner": "a", "lock.until": { $lt: now } });
    const results = await Promise.all(["lapsed", "lapsed", "live", "free"].map((id) => c.updateOne(filter(id), { $set: { lock: null } })));
    assert.equal(results[0]!.modifiedCount + results[1]!.modifiedCount, 1, "the lapsed lease was taken exactly once");
    assert.equal(results[2]!.modifiedCount, 0, "a lease ending 1 ms after the comparison time is live");
    assert.equal(results[3]!.modifiedCount, 0);
    assert.equal((await c.findOne({ _id: "live" }))?.lock?.until.getTime(), live.getTime());
  });
});
