import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../support/context.js";
import { exitedWithin } from "../support/launcher.js";
import { useCliFixture } from "../support/fixture.js";

/**
 * A launcher keeps more queue entries in hand than it has slots (short jobs
 * then find the next one fetched already), and a chunk's jobs wait in the
 * launcher that took the chunk. A job that waits there longer than the slot
 * wait (5 s) goes back to the head of its queue, for a launcher with room,
 * and the launcher that gave it back fetches nothing until one of its slots
 * frees. Before, a second launcher stood idle while jobs waited in the first
 * for as long as its jobs ran (measured: 6 jobs of 6 s, 4 slots, the second
 * launcher started once 4 ran: it ran none, and the last 2 started 6 s later).
 */
const f = useCliFixture("balance");

function ran(log: string): Array<{ id: string; who: string }> {
  if (!existsSync(log)) return [];
  return readFileSync(log, "utf8").split("\n").filter(Boolean).map((l) => ({ id: l.split(" ")[0]!, who: l.split(" ")[1]! }));
}

describe("jobs waiting for a busy launcher's slots", () => {
  for (const added of ["together (one chunk)", "one at a time (an entry each)"] as const) {
    test(`added ${added}: the jobs that wait go to a second launcher with room; each runs once`, async () => {
      const wf = added.startsWith("together") ? "BALCH" : "BALONE";
      const log = join(f.dir, `${wf}.log`);
      const go = join(f.dir, `${wf}.go`);
      // Each job holds its slot until told, and says which launcher ran it.
      const app = f.script(`${wf}.sh`, `echo "$BALSAM_JOB_ID $WHO" >> ${log}\nwhile [ ! -f ${go} ]; do sleep 0.05; done`);
      await f.balsam.apps.add({ name: wf, executable: app });
      const spec = (i: number) => ({ name: `b${i}`, workflow: wf, application: wf, nodePackingCount: 4 });
      const jobs = added.startsWith("together")
        ? await f.balsam.jobs.addMany(Array.from({ length: 6 }, (_, i) => spec(i)))
        : (await Promise.all(Array.from({ length: 6 }, (_, i) => f.balsam.jobs.addMany([spec(i)])))).flat();
      if (added.startsWith("together")) assert.equal(new Set(jobs.map((j) => j.chunk)).size, 1, "one chunk");
      else assert.ok(jobs.every((j) => j.chunk === undefined), "an entry each");
      // Packing 4 on the one node: 4 slots each.
      const a = f.start(wf, { env: { WHO: "A" } });
      await waitFor(() => ran(log).length === 4, 60_000, "launcher A to fill its 4 slots");
      const b = f.start(wf, { env: { WHO: "B" } });
      await waitFor(() => ran(log).length === 6, 60_000, `the 2 waiting jobs to start (A: ${a.output().slice(-1500)})`);
      assert.deepEqual(ran(log).map((r) => r.who), ["A", "A", "A", "A", "B", "B"]);
      assert.match(a.output(), /jobs waited 5 s for a slot here: given back to the head of the queue/);
      writeFileSync(go, "");
      assert.equal(await exitedWithin(a, 60_000), 0, a.output());
      assert.equal(await exitedWithin(b, 60_000), 0, b.output());
      assert.deepEqual(new Set(ran(log).map((r) => r.id)), new Set(jobs.map((j) => j._id)), "each job ran");
      assert.equal(ran(log).length, 6, "once");
      for (const j of await f.balsam.jobs.filter({ workflow: wf }).list()) assert.equal(j.state, "JOB_FINISHED");
    });
  }

  test("alone, a launcher that gave its waiting jobs back takes them again once a slot frees: each runs once", async () => {
    const log = join(f.dir, "alone.log");
    const go = join(f.dir, "alone.go");
    // The first job holds the one slot (packing 1) until told; the others wait past the slot wait.
    const app = f.script("alone.sh", `echo "$BALSAM_JOB_ID $1" >> ${log}\nif [ "$1" = first ]; then while [ ! -f ${go} ]; do sleep 0.05; done; fi`);
    await f.balsam.apps.add({ name: "alone", executable: app });
    const jobs = await f.balsam.jobs.addMany(["first", "second", "third"].map((args, i) => ({ name: `a${i}`, workflow: "BALALONE", application: "alone", args })));
    const l = f.start("BALALONE");
    await waitFor(() => /given back to the head of the queue/.test(l.output()), 60_000, "the waiting jobs to be given back");
    assert.equal(ran(log).length, 1, "only the first ran meanwhile");
    writeFileSync(go, "");
    assert.equal(await exitedWithin(l, 60_000), 0, l.output());
    assert.deepEqual(ran(log).map((r) => r.id).sort(), jobs.map((j) => j._id).sort());
    for (const j of await f.balsam.jobs.filter({ workflow: "BALALONE" }).list()) assert.equal(j.state, "JOB_FINISHED");
  });
});
