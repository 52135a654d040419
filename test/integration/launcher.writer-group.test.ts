import { test } from "node:test";
import assert from "node:assert/strict";
import type { Db, Document, RunCommandOptions } from "mongodb";
import { useTestContext, waitFor } from "../support/context.js";
import { TransitionWriter } from "../../services/launcher/writer.js";
import type { Store, Transition } from "../../libs/store/index.js";
import type { Job } from "../../libs/models/index.js";
import { coll, COLLECTIONS } from "../../libs/store/collections.js";

const ctx = useTestContext("writer_group");

/**
 * The file's store on the real server, but its jobs' bulk writes (`update`
 * commands) seen and the first one held until the test lets it go: a bulk in
 * flight for as long as the test needs, which is what group commit waits on.
 */
function heldStore(hold = true): { store: Store; bulks: number[]; firstSent: Promise<void>; release(): void } {
  const real = coll(ctx.store);
  const bulks: number[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let sent!: () => void;
  const firstSent = new Promise<void>((r) => (sent = r));
  const db = Object.create(real.db) as Db;
  db.command = async (cmd: Document, opts?: RunCommandOptions): Promise<Document> => {
    if (cmd.update === "jobs") {
      bulks.push((cmd.updates as unknown[]).length);
      if (hold && bulks.length === 1) {
        sent();
        await gate;
      }
    }
    return real.db.command(cmd, opts);
  };
  const store = { [COLLECTIONS]: { ...real, db } } as unknown as Store;
  return { store, bulks, firstSent, release };
}

/** The same store, each bulk's size seen and none held. */
const countedStore = (): { store: Store; bulks: number[] } => heldStore(false);

/** The delay of the writer's armed timer (setTimeout(…, 0) reads 1), undefined when none is armed: which window a gathering got. */
const armedMs = (w: TransitionWriter): number | undefined => (w as unknown as { timer: { _idleTimeout: number } | undefined }).timer?._idleTimeout;

const toStagedIn = (id: string): Transition => ({ id, from: "READY", path: [{ state: "STAGED_IN" }] });

test("writes the timer would send while a bulk is in flight wait for its answer and go as one bulk, each caller told its own answer", async () => {
  const ids = ["g0", "g1", "g2", "g3"];
  // g3 is not READY: its compare-and-set loses, and only its caller hears false.
  await coll(ctx.store).jobs.insertMany([
    ...ids.slice(0, 3).map((_id) => ({ _id, state: "READY", stateHistory: [] }) as unknown as Job),
    { _id: "g3", state: "RUNNING", stateHistory: [] } as unknown as Job,
  ]);
  const held = heldStore();
  const w = new TransitionWriter(held.store, { flushMs: 1 });
  // The writer's timer, read to know that a tick has passed (a condition, not a sleep).
  const timerSet = () => (w as unknown as { timer: NodeJS.Timeout | undefined }).timer !== undefined;
  try {
    const first = w.write(toStagedIn("g0"));
    await held.firstSent;
    // Three writes while the first bulk is in flight, each once the writer has
    // no timer armed: a tick that would have sent it has passed (or, held for
    // the answer, none is armed).
    const later: Array<Promise<boolean>> = [];
    for (const id of ["g1", "g2", "g3"]) {
      later.push(w.write(toStagedIn(id)));
      await waitFor(() => !timerSet(), 10_000, "the writer's timer to fire");
    }
    assert.deepEqual(held.bulks, [1], "nothing more is sent while the first bulk is in flight");
    held.release();
    assert.equal(await first, true);
    assert.deepEqual(await Promise.all(later), [true, true, false]);
    assert.deepEqual(held.bulks, [1, 3], "the three waiting writes went as one bulk after the first answered");
    const states = await coll(ctx.store).jobs.find({ _id: { $in: ids } }).sort({ _id: 1 }).toArray();
    assert.deepEqual(states.map((j) => j.state), ["STAGED_IN", "STAGED_IN", "STAGED_IN", "RUNNING"]);
  } finally {
    held.release();
    await w.close();
  }
});

test("while writes stream in a gathering waits longer (larger bulks); a lone write still goes after the short window", async () => {
  const ids = ["s0", "s1", "s2", "s3"];
  await coll(ctx.store).jobs.insertMany(ids.map((_id) => ({ _id, state: "READY", stateHistory: [] }) as unknown as Job));
  const { store, bulks } = countedStore();
  // A stream window no test would sit out: the armed timer's delay tells which window a gathering got.
  const w = new TransitionWriter(store, { flushMs: 1, streamMs: 600_000 });
  try {
    // Two writes in one gathering: the first bulk, after the short window.
    const first = [w.write(toStagedIn("s0")), w.write(toStagedIn("s1"))];
    assert.equal(armedMs(w), 1, "with no bulk before it, a gathering waits the short window");
    assert.deepEqual(await Promise.all(first), [true, true]);
    assert.deepEqual(bulks, [2]);
    // Right after a bulk of several: a stream, so the next gathering waits the long window.
    const third = w.write(toStagedIn("s2"));
    assert.equal(armedMs(w), 600_000, "after a bulk of two, the next gathering waits the stream window");
    await w.drain();
    assert.equal(await third, true);
    assert.deepEqual(bulks, [2, 1]);
    // After a bulk of one (a lone result), the short window again.
    const fourth = w.write(toStagedIn("s3"));
    assert.equal(armedMs(w), 1, "after a bulk of one, a gathering waits the short window");
    assert.equal(await fourth, true);
    assert.deepEqual(bulks, [2, 1, 1]);
  } finally {
    await w.close();
  }
});

test("a gathering does not wait when no other write can come (quiet): a lone result goes at once", async () => {
  const ids = ["q0", "q1"];
  await coll(ctx.store).jobs.insertMany(ids.map((_id) => ({ _id, state: "READY", stateHistory: [] }) as unknown as Job));
  let quiet = true;
  // Windows no test would sit out: the armed timer's delay tells which one a gathering got.
  const w = new TransitionWriter(ctx.store, { flushMs: 600_000, streamMs: 600_000, quiet: () => quiet });
  try {
    const lone = w.write(toStagedIn("q0"));
    // setTimeout(…, 0) is armed as 1 ms.
    assert.equal(armedMs(w), 1, "with nothing else running, the write goes on the next tick");
    assert.equal(await lone, true);
    quiet = false;
    const gathered = w.write(toStagedIn("q1"));
    assert.equal(armedMs(w), 600_000, "with other jobs running, it waits for their writes");
    await w.drain();
    assert.equal(await gathered, true);
  } finally {
    await w.close();
  }
});

test("a fast stream waits the long window while work waits for slots, and goes as soon as `enough` writes wait; one pause ends it", async () => {
  // Writes to jobs that do not exist: each compare-and-set loses (false); what is tested is when bulks go.
  const { store, bulks } = countedStore();
  let t = 0;
  let saturated = true;
  // Fast from 10 writes a second (a mean gap of 100 ms or less); a window no test would sit out.
  const w = new TransitionWriter(store, { flushMs: 1, streamMs: 7, fastRate: 10, fastStreamMs: 600_000, enough: 4, clock: () => t, saturated: () => saturated });
  try {
    // One write every millisecond of the writer's clock, each answered before the next: the average gap falls from
    // its 1,000 ms start below 100 ms after some 23 writes; each goes alone after the short window until then.
    let n = 0;
    for (; armedMs(w) !== 600_000; n++) {
      assert.ok(n < 40, "40 writes a millisecond apart make a fast stream");
      t += 1;
      const p = w.write(toStagedIn(`f${n}`));
      if (armedMs(w) !== 600_000) assert.equal(await p, false);
      else {
        // The gathering the fast stream armed: three more writes make `enough`, and the four go at once.
        const more = [1, 2, 3].map((k) => w.write(toStagedIn(`f${n}_${k}`)));
        assert.equal(armedMs(w), undefined, "the fourth write sent the bulk");
        assert.deepEqual(await Promise.all([p, ...more]), [false, false, false, false]);
        break;
      }
    }
    assert.ok(n >= 20, `the stream was fast after ${n} writes: the average takes some to move`);
    assert.deepEqual(bulks.slice(-1), [4]);
    assert.equal(bulks.length, n + 1, "every write before it went alone");
    // Slots free and nothing to run (a search waiting on these results): the stream window, not the fast one.
    saturated = false;
    t += 1;
    const starved = w.write(toStagedIn("f-starved"));
    assert.equal(armedMs(w), 7, "not saturated: the stream window");
    assert.equal(await starved, false);
    // A gathering in the fast window when the launcher runs out of work: it goes after the stream window instead.
    saturated = true;
    t += 1;
    const held = w.write(toStagedIn("f-held"));
    assert.equal(armedMs(w), 600_000);
    saturated = false;
    t += 1;
    const next = w.write(toStagedIn("f-next"));
    assert.equal(armedMs(w), 7, "re-armed with the stream window");
    assert.deepEqual(await Promise.all([held, next]), [false, false]);
    assert.deepEqual(bulks.slice(-1), [2]);
    // A pause of seconds: the next write is not taken for a fast stream.
    t += 5_000;
    const after = w.write(toStagedIn("f-after"));
    assert.equal(armedMs(w), 1, "after a pause, the short window");
    assert.equal(await after, false);
  } finally {
    await w.close();
  }
});

test("a gathering already waiting goes on the next tick once no other write can come (quiet)", async () => {
  const ids = ["w0", "w1"];
  await coll(ctx.store).jobs.insertMany(ids.map((_id) => ({ _id, state: "READY", stateHistory: [] }) as unknown as Job));
  const held = heldStore();
  let quiet = false;
  const w = new TransitionWriter(held.store, { flushMs: 600_000, streamMs: 600_000, quiet: () => quiet });
  try {
    const first = w.write(toStagedIn("w0"));
    assert.equal(armedMs(w), 600_000, "another job is running: the write waits for theirs");
    // That job has ended and writes how: nothing more can come.
    quiet = true;
    const second = w.write(toStagedIn("w1"));
    assert.equal(armedMs(w), 1, "the gathering goes on the next tick");
    held.release();
    assert.deepEqual(await Promise.all([first, second]), [true, true]);
    assert.deepEqual(held.bulks, [2], "both in one bulk");
  } finally {
    held.release();
    await w.close();
  }
});
