import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { coll } from "../../libs/store/collections.js";
import { serverTime } from "../../libs/store/index.js";
import { useCliFixture } from "../support/fixture.js";

/**
 * A login node whose clock is wrong (libfaketime, provisioned by
 * scripts/provision.sh --for-tests): `modify` and `rm` (and the clients'
 * setState and setParents) judge whether a
 * launcher holds a job by the database server's clock, the one launchers
 * compute their leases from (DESIGN §6.2), not by the node's.
 */
const f = useCliFixture("clockskew");
const FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const skewed = (clock: string) => ({ LD_PRELOAD: FAKETIME_LIB, FAKETIME: clock });

/** A job RUNNING under a lease that ends `ms` from now on the server's clock. */
async function leased(name: string, ms: number): Promise<string> {
  await f.balsam.apps.add({ name: "skewapp", executable: "/bin/true" }).catch(() => undefined);
  const job = await f.balsam.jobs.add({ name, workflow: "SKEW", application: "skewapp" });
  const until = new Date((await serverTime(f.ctx.store)).getTime() + ms);
  await coll(f.ctx.store).jobs.updateOne({ _id: job._id }, { $set: { state: "RUNNING", lock: { owner: "test-launcher", until } } });
  return job._id;
}

describe("a login node with a wrong clock", () => {
  test("two hours ahead: a live lease still refuses modify and rm", async () => {
    assert.ok(existsSync(FAKETIME_LIB), "libfaketime is installed (scripts/provision.sh --for-tests)");
    const id = await leased("live", 10 * 60_000);
    const env = skewed("+2h");
    const modify = await f.db.run(["modify", id, "environ_vars", "A=1"], { env });
    assert.equal(modify.code, 1, modify.stdout + modify.stderr);
    assert.match(modify.stderr, /is held by launcher test-launcher/);
    const rm = await f.db.run(["rm", "jobs", "--id", id], { env });
    assert.equal(rm.code, 1, rm.stdout + rm.stderr);
    assert.match(rm.stderr, /1 of the job\(s\) to remove is running: live/);
    const doc = await f.balsam.jobs.get(id);
    assert.deepEqual([doc.state, doc.environVars], ["RUNNING", {}]);
  });

  test("two hours behind: a lapsed lease (its launcher gone) lets modify through", async () => {
    const id = await leased("lapsed", -10 * 60_000);
    const env = skewed("-2h");
    await f.ok(["modify", id, "environ_vars", "A=1"], env);
    assert.deepEqual((await f.balsam.jobs.get(id)).environVars, { A: "1" });
  });
});
