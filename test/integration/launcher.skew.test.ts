import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../support/context.js";
import { exitedWithin, type LauncherProc } from "../support/launcher.js";
import { marksScript, runsOf, overlaps } from "../support/marks.js";
import { useCliFixture } from "../support/fixture.js";

/**
 * Launchers whose node clocks are wrong (libfaketime, provisioned by
 * scripts/provision.sh --for-tests): leases are computed and judged on the
 * database server's clock (DESIGN §6.2), so a node an hour behind or ahead
 * neither loses a live job early nor keeps a dead one's lease for an hour.
 */
const f = useCliFixture("skew");
const FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const LEASE_MS = 3000;

function launch(wf: string, clock: string): LauncherProc {
  return f.start(wf, { env: { BALSAM_LEASE_TTL_MS: String(LEASE_MS), LD_PRELOAD: FAKETIME_LIB, FAKETIME: clock } });
}

async function runningUnder(wf: string, seconds: number, clock: string) {
  const marks = join(f.dir, `${wf}.marks`);
  await f.balsam.apps.add({ name: wf, executable: marksScript(f.dir, wf, marks, seconds) });
  const job = await f.balsam.jobs.add({ name: wf.toLowerCase(), workflow: wf, application: wf });
  const a = launch(wf, clock);
  await waitFor(async () => (await f.balsam.jobs.get(job._id)).lock !== null && runsOf(marks).length > 0, 30_000, "the job to run under a lease");
  return { job, a, marks };
}

describe("launchers with skewed clocks", () => {
  before(() => {
    assert.ok(existsSync(FAKETIME_LIB), "libfaketime is installed (scripts/provision.sh --for-tests)");
  });

  test("a live job on a node an hour behind is not recovered by a node an hour ahead: one run, finished once", async () => {
    const { job, a, marks } = await runningUnder("BEHIND", 8, "-1h");
    const b = launch("BEHIND", "+1h");
    assert.equal(await exitedWithin(a, 60_000), 0, a.output());
    assert.equal(await exitedWithin(b, 60_000), 0, b.output());
    const doc = await f.balsam.jobs.get(job._id);
    assert.equal(doc.state, "JOB_FINISHED", JSON.stringify(doc.stateHistory));
    assert.ok(!doc.stateHistory.some((h) => h.state === "RESTART_READY"), `recovered while it ran: ${JSON.stringify(doc.stateHistory)}`);
    const runs = runsOf(marks);
    assert.equal(runs.length, 1, JSON.stringify(runs));
    assert.ok(runs[0]!.ended);
  });

  test("a dead launcher an hour ahead: its lease lapses after one lease for a node an hour behind, the job runs again once, never two at once", async () => {
    const { job, a, marks } = await runningUnder("AHEAD", 6, "+1h");
    const b = launch("AHEAD", "-1h");
    a.child.kill("SIGKILL");
    await a.exited;
    const killedAt = Date.now();
    await waitFor(async () => (await f.balsam.jobs.get(job._id)).stateHistory.some((h) => h.state === "RESTART_READY"), 6 * LEASE_MS, "the dead launcher's lease to be recovered");
    assert.ok(Date.now() - killedAt < 6 * LEASE_MS);
    assert.equal(await exitedWithin(b, 60_000), 0, b.output());
    const doc = await f.balsam.jobs.get(job._id);
    assert.equal(doc.state, "JOB_FINISHED", JSON.stringify(doc.stateHistory));
    assert.equal(doc.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1);
    const runs = runsOf(marks);
    assert.deepEqual(overlaps(runs), []);
    assert.equal(runs.filter((r) => r.ended).length, 1, JSON.stringify(runs));
  });
});
