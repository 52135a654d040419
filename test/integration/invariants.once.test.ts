/**
 * DESIGN §6.2, "a job finishes once", at scale and under contention: the
 * claim the launchers make is a compare-and-set, and it only guards when the
 * server's conditional update is atomic (the first round's FerretDB let two
 * clients both win: 306–316 wins over 300 jobs).
 */
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startLauncher } from "../support/launcher.js";
import { reenqueueRunnable } from "../../libs/client/index.js";
import { recordTransitions, Store, type Transition } from "../../libs/store/index.js";
import { useCliFixture } from "../support/fixture.js";

const f = useCliFixture("once");
const { ctx } = f;

describe("a job finishes once", () => {
  after(async () => {
  });

  test("4 clients claiming the same 1,000 jobs in bulks: each job is claimed by exactly one, and each knows", async () => {
    await f.balsam.apps.add({ name: "noop", executable: "/bin/true" });
    const jobs = await f.balsam.jobs.addMany(Array.from({ length: 1000 }, (_, i) => ({ name: `c${i}`, workflow: "CLAIMS", application: "noop" })));
    const ids = jobs.map((j) => j._id);
    const stores = await Promise.all([0, 1, 2, 3].map(() => Store.connect({ url: ctx.mongoUrl, dbName: ctx.dbName })));
    try {
      const claim = (owner: string): Transition[] =>
        ids.map((id) => ({
          id,
          from: "READY",
          owner: null,
          path: [{ state: "STAGED_IN" }, { state: "PREPROCESSED" }, { state: "RUNNING", message: owner }],
          set: { lock: { owner, until: new Date(Date.now() + 60_000) } },
        }));
      // Bulks of 100, all clients in the same order, so they meet on each job.
      const won = await Promise.all(
        stores.map(async (s, k) => {
          const mine: string[] = [];
          const ts = claim(`L${k}`);
          for (let i = 0; i < ts.length; i += 100) {
            const batch = ts.slice(i, i + 100);
            const lost = new Set(await recordTransitions(s, batch));
            mine.push(...batch.filter((t) => !lost.has(t.id)).map((t) => t.id));
          }
          return mine;
        }),
      );
      const all = won.flat();
      assert.equal(all.length, 1000, `claims reported won: ${won.map((w) => w.length).join(" + ")}`);
      assert.equal(new Set(all).size, 1000);
      // What each client believes matches the documents.
      const docs = await f.balsam.jobs.filter({ workflow: "CLAIMS" }).list();
      won.forEach((mine, k) => {
        const owned = docs.filter((d) => d.lock?.owner === `L${k}`).map((d) => d._id).sort();
        assert.deepEqual([...mine].sort(), owned);
      });
      for (const d of docs) assert.equal(d.stateHistory.filter((h) => h.state === "RUNNING").length, 1, `${d._id} claimed twice`);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  test("4 launchers on one workflow of 3,000 short jobs, runnable jobs re-offered meanwhile: each runs once, finishes once", async () => {
    const log = join(f.dir, "ran.log");
    const app = join(f.dir, "mark.sh");
    writeFileSync(app, `#!/bin/sh\necho "$BALSAM_JOB_ID" >> ${log}\n`, { mode: 0o755 });
    await f.balsam.apps.add({ name: "mark", executable: app });
    const N = 3000;
    await f.balsam.jobs.addMany(Array.from({ length: N }, (_, i) => ({ name: `m${i}`, workflow: "ONCE", application: "mark", nodePackingCount: 4 })));
    const launchers = [1, 2, 3, 4].map((n) => startLauncher(["--wf-filter", "ONCE", "--job-mode", "serial"], { ...f.db.env, BALSAM_NODELIST: `node${n}` }));
    // What `balsam service` and idle launchers do after Redis lost entries:
    // offer every runnable job again, while the launchers are taking them.
    let running = true;
    const reoffer = (async () => {
      let rounds = 0;
      while (running) {
        await reenqueueRunnable(f.balsam.store, f.balsam.queues, ["ONCE"]);
        rounds++;
        await new Promise((r) => setTimeout(r, 200));
      }
      return rounds;
    })();
    const codes = await Promise.all(launchers.map((l) => l.exited));
    running = false;
    assert.ok((await reoffer) > 0);
    codes.forEach((c, i) => assert.equal(c, 0, launchers[i]!.output()));
    const ran = readFileSync(log, "utf8").trim().split("\n");
    const counts = new Map<string, number>();
    for (const id of ran) counts.set(id, (counts.get(id) ?? 0) + 1);
    const twice = [...counts].filter(([, n]) => n > 1);
    assert.equal(twice.length, 0, `jobs run more than once: ${JSON.stringify(twice.slice(0, 5))}`);
    assert.equal(counts.size, N);
    const docs = await f.balsam.jobs.filter({ workflow: "ONCE" }).list();
    assert.equal(docs.length, N);
    for (const d of docs) {
      assert.equal(d.state, "JOB_FINISHED");
      assert.equal(d.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1, `${d._id} finished twice`);
    }
    const owners = new Set(docs.map((d) => d.stateHistory.find((h) => h.state === "STAGED_IN")?.message));
    assert.ok(owners.size >= 2, `jobs were shared: ${owners.size} launcher(s) took them`);
  });
});
