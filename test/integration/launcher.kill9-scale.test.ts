/**
 * DESIGN §6.1/§6.2 at the issue's scale: a launcher killed with SIGKILL in
 * the middle of 2,000 jobs. Within seconds none of its jobs' processes is
 * alive (so nothing can run twice at once); a second launcher finishes the
 * run once the dead one's queue entry locks (and leases) lapse: 0 lost, 0
 * recorded finished twice.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { useTestContext, waitFor } from "../support/context.js";
import { makeCliDb, type CliDb } from "../support/cli.js";
import { exitedWithin, startLauncher } from "../support/launcher.js";
import { connect, type Balsam } from "../../libs/client/index.js";
import { isAlive } from "../../services/dbserver/servers.js";

const ctx = useTestContext("kill9scale");
let db: CliDb;
let balsam: Balsam;
let root: string;

describe("a launcher killed with SIGKILL in a 2,000-job run", () => {
  before(async () => {
    db = await makeCliDb(ctx.mongoUrl, ctx.redisUrl, ctx.dbName, ctx.prefix);
    balsam = await connect({ dbPath: db.dir });
    root = mkdtempSync(join(tmpdir(), "balsam-kill9-"));
    mkdirSync(join(root, "pids"));
    const app = join(root, "work.sh");
    // Each run leaves its pid behind, so the test can tell whether it outlived its launcher.
    writeFileSync(app, `#!/bin/sh\necho $$ > ${join(root, "pids")}/$BALSAM_JOB_ID.$$\nsleep 0.1\n`, { mode: 0o755 });
    await balsam.apps.add({ name: "work", executable: app });
    await balsam.jobs.addMany(Array.from({ length: 2000 }, (_, i) => ({ name: `k${i}`, workflow: "K9", application: "work", nodePackingCount: 8 })));
  });
  after(async () => {
    await balsam.close();
    db.cleanup();
    rmSync(root, { recursive: true, force: true });
  });

  test("no process of the dead launcher's jobs survives; the next launcher finishes every job once", async () => {
    const env = { ...db.env, BALSAM_NODELIST: "node1", BALSAM_LEASE_TTL_MS: "3000" };
    const l1 = startLauncher(["--wf-filter", "K9", "--job-mode", "serial"], env);
    await waitFor(async () => (await balsam.jobs.filter({ workflow: "K9", state: "JOB_FINISHED" }).count()) >= 400, 180_000, "400 jobs to finish");
    const pids = () => readdirSync(join(root, "pids")).map((f) => Number(f.split(".").pop()));
    // Jobs run ahead of their claim (DESIGN §7): a 0.1 s job is never recorded RUNNING, so "running" is a live process.
    await waitFor(() => pids().some(isAlive), 30_000, "jobs running at the kill", 5);
    l1.child.kill("SIGKILL");
    await l1.exited;
    await waitFor(() => pids().every((p) => !isAlive(p)), 10_000, "the dead launcher's job processes to end").catch(() => {
      throw new Error(`job processes alive 10 s after their launcher's SIGKILL: ${pids().filter(isAlive).join(", ")}`);
    });
    const l2 = startLauncher(["--wf-filter", "K9", "--job-mode", "serial"], env);
    assert.equal(await exitedWithin(l2, 300_000), 0, l2.output().slice(-3000));
    const jobs = await balsam.jobs.filter({ workflow: "K9" }).list();
    assert.equal(jobs.length, 2000);
    for (const j of jobs) {
      assert.equal(j.state, "JOB_FINISHED", `${j.name}: ${j.state}`);
      assert.equal(j.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1, `${j.name} finished twice`);
    }
    // Jobs cut short at the kill came back when their queue entries' locks lapsed, and ran again.
    const runs = new Map<string, number>();
    for (const f of readdirSync(join(root, "pids"))) runs.set(f.split(".")[0]!, (runs.get(f.split(".")[0]!) ?? 0) + 1);
    assert.ok([...runs.values()].some((n) => n > 1), "some job cut short by the kill ran again");
  });
});
