import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { useTestContext, waitFor } from "../support/context.js";
import { startRedis, type ServerHandle } from "../../services/dbserver/servers.js";
import { JobQueues } from "../../libs/queue/index.js";

const sha1 = (text: string) => createHash("sha1").update(text).digest("hex");

/**
 * BullMQ's scripts go as EVALSHA of the script's SHA-1 (as EVAL of its text
 * the first time, while the server does not have it): the installed package's
 * own text of a script names it in what MONITOR shows.
 */
function scriptSha(file: string, name: string): string {
  const mod = createRequire(import.meta.url)(`bullmq/dist/cjs/scripts/${file}.js`) as Record<string, { content: string }>;
  return sha1(mod[name]!.content);
}

/** An argument as MONITOR quotes it, unquoted (Redis's sdscatrepr: \\ \" \n \r \t \a \b \xHH). */
function unquote(arg: string): string {
  const named: Record<string, string> = { n: "\n", r: "\r", t: "\t", a: "\x07", b: "\b" };
  return arg.replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) => (e.length === 3 ? String.fromCharCode(parseInt(e.slice(1), 16)) : (named[e] ?? e)));
}
const MOVE_TO_ACTIVE = scriptSha("moveToActive-11", "moveToActive");
const MOVE_TO_FINISHED = scriptSha("moveToFinished-14", "moveToFinished");

const ctx = useTestContext("completion_fetch");
// A Redis of this file's own: MONITOR on the shared one would stream every other file's commands.
let redis: ServerHandle | undefined;
let dir: string | undefined;
ctx.setup(async () => {
  dir = mkdtempSync(join(tmpdir(), "balsam-completion-fetch-"));
  redis = await startRedis({ dir: join(dir, "redis"), appendOnly: false, logFile: join(dir, "redis.log") });
});
ctx.onClose(async () => {
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("a finished entry's completion fetches the next entry while run-ahead holds come and go: moveToActive far below one per entry", async () => {
  const N = 200;
  const queues = await JobQueues.connect({ redisUrl: redis!.url, prefix: ctx.prefix });
  const watcher = new Redis(redis!.url);
  const monitor = await watcher.monitor();
  try {
    await queues.enqueue(Array.from({ length: N }, (_, i) => ({ id: `j${i}`, workflow: "wf", attempts: 0 })));
    const calls = { active: 0, finished: 0 };
    let end = false;
    monitor.on("monitor", (_time: string, [cmd = "", arg = ""]: string[]) => {
      const script = /^evalsha$/i.test(cmd) ? arg : /^eval$/i.test(cmd) ? sha1(unquote(arg)) : "";
      if (script === MOVE_TO_ACTIVE) calls.active++;
      if (script === MOVE_TO_FINISHED) calls.finished++;
      if (/^echo$/i.test(cmd) && arg === "end") end = true;
    });
    let done = 0;
    let ahead = 0;
    // As the launcher's Dispatch.setAhead does: a job running ahead of its
    // claim holds its entry, and the hold drops as the handler returns.
    const consumer = queues.consume(
      "wf",
      async () => {
        consumer.hold(++ahead);
        try {
          await new Promise((r) => setImmediate(r));
        } finally {
          consumer.hold(--ahead);
        }
        done++;
      },
      { concurrency: 1 },
    );
    await waitFor(async () => done === N && (await queues.pending("wf")) === 0, 60_000, `${N} entries to be handled and completed`);
    await consumer.close();
    // MONITOR is in order: once it shows this, it has shown every script before it.
    await queues.connection.echo("end");
    await waitFor(() => end, 10_000, "MONITOR to catch up");
    assert.equal(calls.finished, N, "each entry completed once");
    // Measured: 18–44 with the completion fetching (44 under stress-ng); 199–202 when the hold drops before it.
    assert.ok(calls.active < N / 2, `${calls.active} moveToActive calls for ${N} entries`);
  } finally {
    monitor.disconnect();
    watcher.disconnect();
    await queues.close();
  }
});

test("wake: an entry whose handler raised the hold lets the next entry be fetched while it is still in hand", async () => {
  const queues = await JobQueues.connect({ redisUrl: redis!.url, prefix: `${ctx.prefix}_wake` });
  try {
    await queues.enqueue([0, 1].map((i) => ({ id: `w${i}`, workflow: "wf", attempts: 0 })));
    const seen: string[] = [];
    let second!: () => void;
    const secondArrived = new Promise<void>((r) => (second = r));
    let overlapped = false;
    // As a chunk's jobs do once they have slots (dispatch.ts takeChunk): the first handler stays in hand.
    const consumer = queues.consume(
      "wf",
      async (entry) => {
        seen.push(entry.id);
        if (seen.length > 1) return second();
        // A read first, as a chunk's handler reads its jobs: by then BullMQ's loop is waiting (a hold raised before it looks again needs no wake).
        await queues.pending("wf");
        consumer.hold(1);
        consumer.wake();
        // Without the wake BullMQ's loop waits for this handler to end before it fetches again: the race's timer wins.
        overlapped = await Promise.race([secondArrived.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))]);
        consumer.hold(0);
      },
      { concurrency: 1 },
    );
    await waitFor(async () => seen.length === 2 && (await queues.pending("wf")) === 0, 20_000, "both entries handled");
    await consumer.close();
    assert.deepEqual(seen, ["w0", "w1"]);
    assert.ok(overlapped, "the second entry came while the first was in hand");
  } finally {
    await queues.close();
  }
});

test("an entry's first delivery says so; once given back (deferred) it does not: a chunk's snapshots hold only on the first", async () => {
  const queues = await JobQueues.connect({ redisUrl: redis!.url, prefix: `${ctx.prefix}_first` });
  try {
    await queues.enqueue([{ id: "f0", workflow: "wf", attempts: 0 }]);
    const firsts: boolean[] = [];
    const consumer = queues.consume(
      "wf",
      async (entry) => {
        firsts.push(entry.first);
        if (firsts.length === 1) await entry.defer(0);
      },
      { concurrency: 1 },
    );
    await waitFor(async () => firsts.length === 2 && (await queues.pending("wf")) === 0, 20_000, "two deliveries");
    await consumer.close();
    assert.deepEqual(firsts, [true, false]);
  } finally {
    await queues.close();
  }
});

test("drained(): true once a fetch finds the queue empty, false while an entry waits behind the one in hand", async () => {
  const queues = await JobQueues.connect({ redisUrl: redis!.url, prefix: ctx.prefix });
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const handled: string[] = [];
  const consumer = queues.consume(
    "drain",
    async (entry) => {
      handled.push(entry.id);
      if (entry.id === "d0") await gate;
    },
    { concurrency: 1 },
  );
  try {
    await waitFor(() => consumer.drained(), 10_000, "the consumer to find its empty queue");
    await queues.enqueue([0, 1].map((i) => ({ id: `d${i}`, workflow: "drain", attempts: 0 })));
    // d0 is in hand and holds the only place: d1 waits in the queue, so the consumer is not drained.
    await waitFor(() => handled.length === 1, 10_000, "the first entry to be taken");
    assert.equal(consumer.drained(), false, "an entry waits in the queue");
    release();
    await waitFor(() => handled.length === 2 && consumer.drained(), 10_000, "both entries handled and the queue found empty");
  } finally {
    release();
    await consumer.close();
    await queues.close();
  }
});
