/**
 * DESIGN §6.1/§6.2 at the issue's scale: a launcher killed with SIGKILL in
 * the middle of 2,000 jobs. Within seconds none of its jobs' processes is
 * alive (so nothing can run twice at once); a second launcher finishes the
 * run once the dead one's queue entry locks (and leases) lapse: 0 lost, 0
 * recorded finished twice.
 */
import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../support/context.js";
import { exitedWithin } from "../support/launcher.js";
import { useCliFixture } from "../support/fixture.js";
import { isAlive } from "../../services/dbserver/servers.js";

const f = useCliFixture("kill9scale");

describe("a launcher killed with SIGKILL in a 2,000-job run", () => {
  before(async () => {
    mkdirSync(join(f.dir, "pids"));
    // Each run leaves its pid behind, so the test can tell whether it outlived its launcher.
    const app = f.script("work.sh", `echo $$ > ${join(f.dir, "pids")}/$BALSAM_JOB_ID.$$\nsleep 0.1`);
    await f.balsam.apps.add({ name: "work", executable: app });
    await f.balsam.jobs.addMany(Array.from({ length: 2000 }, (_, i) => ({ name: `k${i}`, workflow: "K9", application: "work", nodePackingCount: 8 })));
  });

  test("no process of the dead launcher's jobs survives; the next launcher finishes every job once", async () => {
    const env = { BALSAM_LEASE_TTL_MS: "3000" };
    const l1 = f.start("K9", { env });
    await waitFor(async () => (await f.balsam.jobs.filter({ workflow: "K9", state: "JOB_FINISHED" }).count()) >= 400, 180_000, "400 jobs to finish");
    const pids = () => readdirSync(join(f.dir, "pids")).map((name) => Number(name.split(".").pop()));
    // Jobs run ahead of their claim (DESIGN §7): a 0.1 s job is never recorded RUNNING, so "running" is a live process.
    await waitFor(() => pids().some(isAlive), 30_000, "jobs running at the kill", 5);
    l1.child.kill("SIGKILL");
    await l1.exited;
    await waitFor(() => pids().every((p) => !isAlive(p)), 10_000, "the dead launcher's job processes to end").catch(() => {
      throw new Error(`job processes alive 10 s after their launcher's SIGKILL: ${pids().filter(isAlive).join(", ")}`);
    });
    const l2 = f.start("K9", { env });
    assert.equal(await exitedWithin(l2, 300_000), 0, l2.output().slice(-3000));
    const jobs = await f.balsam.jobs.filter({ workflow: "K9" }).list();
    assert.equal(jobs.length, 2000);
    for (const j of jobs) {
      assert.equal(j.state, "JOB_FINISHED", `${j.name}: ${j.state}`);
      assert.equal(j.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1, `${j.name} finished twice`);
    }
    // Jobs cut short at the kill came back when their queue entries' locks lapsed, and ran again.
    const runs = new Map<string, number>();
    for (const name of readdirSync(join(f.dir, "pids"))) runs.set(name.split(".")[0]!, (runs.get(name.split(".")[0]!) ?? 0) + 1);
    assert.ok([...runs.values()].some((n) => n > 1), "some job cut short by the kill ran again");
  });
});
