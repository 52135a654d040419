import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { waitFor } from "../support/context.js";
import { HelperSpawner, helperPath, type SpawnReply } from "../../services/launcher/spawner.js";

/**
 * HelperSpawner buffers its requests for one turn of the event loop, per
 * helper process (spawner.ts `send`): these tests make a request in the turn
 * its helper dies, and one in the turn the launcher closes it.
 */
let dir: string;
const path = helperPath();

before(() => {
  dir = mkdtempSync(join(tmpdir(), "balsam-outbox-"));
  assert.ok(path, "dist/native/balsam-spawn is built by `npm run build`");
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `touch MARKER`; the replies it gets are collected as they come. */
function touch(h: HelperSpawner, marker: string): SpawnReply[] {
  const replies: SpawnReply[] = [];
  h.run({ argv: ["/bin/touch", marker], cwd: dir, env: {}, outFile: join(dir, "out.txt"), mkdir: false }, (m) => replies.push(m));
  return replies;
}
const ended = (replies: SpawnReply[]) => replies.some((m) => m.t !== "started");

/** The helper process a spawner writes to now (private: the test kills it, and hears its end just before the spawner does). */
const helperOf = (h: HelperSpawner) => (h as unknown as { child: ChildProcess | undefined }).child;

test("a request buffered for a helper that dies is told lost and never reaches the helper that replaces it", async () => {
  const h = new HelperSpawner(path!, () => undefined);
  const lostMarker = join(dir, "lost");
  const nextMarker = join(dir, "next");
  try {
    const a = helperOf(h)!;
    let lost: SpawnReply[] = [];
    let next: SpawnReply[] = [];
    // In the turn the spawner hears of A's end: a request made just before it
    // does is buffered for A; one made just after starts a new helper, before
    // that turn's buffer would have been written.
    a.prependOnceListener("close", () => {
      lost = touch(h, lostMarker);
      queueMicrotask(() => (next = touch(h, nextMarker)));
    });
    a.kill("SIGKILL");
    await waitFor(() => ended(lost) && ended(next), 10_000, "both jobs to be told their end");
    assert.deepEqual(lost.map((m) => m.t), ["lost"]);
    assert.match((lost[0] as { message: string }).message, /^its process was lost: \S+balsam-spawn exited \(SIGKILL\)$/);
    // The new helper runs the request made for it, and only that one.
    assert.notEqual(helperOf(h), a);
    assert.deepEqual(next.map((m) => m.t), ["started", "exit"]);
    assert.deepEqual(next[1], { t: "exit", code: 0, signal: null, outputBytes: 0 });
    assert.ok(existsSync(nextMarker));
    await h.close();
    assert.equal(existsSync(lostMarker), false, "the lost job did not run on the next helper");
  } finally {
    await h.close();
  }
});

test("close() sends what is still buffered: a request made in its turn is started and told its end", async () => {
  const h = new HelperSpawner(path!, () => undefined);
  const replies = touch(h, join(dir, "closing"));
  await h.close();
  // The helper's replies are all read before close() returns (it waits for "close", not "exit").
  assert.deepEqual(replies.map((m) => m.t), ["started", "exit"]);
});
