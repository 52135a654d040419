import { after, before } from "node:test";
import { randomBytes } from "node:crypto";
import { Store } from "../../libs/store/index.js";
import { JobQueues, masterNodes } from "../../libs/queue/index.js";
import { waitFor } from "../../services/dbserver/servers.js";
import { startTestServers, type TestServers } from "./servers.js";
import { coll } from "../../libs/store/collections.js";

export { waitFor };

/**
 * Per-test-file context: its own database name and queue prefix on the shared
 * test servers (started here when the runner did not start them), cleaned up
 * afterwards. A file that leaves sockets open fails in `after`.
 */
export interface TestContext {
  mongoUrl: string;
  redisUrl: string;
  dbName: string;
  prefix: string;
  store: Store;
  queues: JobQueues;
  /** Registers something to close in `after` (launchers, extra clients). */
  onClose(fn: () => Promise<void> | void): void;
  /**
   * Registers set-up to run in `before`, once the context's own and every
   * step registered earlier have finished. Node 20 calls a top-level
   * `before` hook as soon as it is registered, without awaiting the hooks
   * before it, so a file's `before` using the context (or a fixture built
   * on it) raced their set-up; a step here waits for it.
   */
  setup(fn: () => Promise<void> | void): void;
}

let servers: TestServers | undefined;

export function uniqueName(kind: string): string {
  return `t_${kind}_${randomBytes(4).toString("hex")}`;
}

function openSockets(): number {
  return process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap" || r === "TCPWRAP").length;
}

export function useTestContext(kind: string): TestContext {
  const ctx = { dbName: uniqueName(kind), prefix: uniqueName(kind) } as TestContext;
  const closers: Array<() => Promise<void> | void> = [];
  let baseline = 0;
  /** Settles as the step registered last does. */
  let last: Promise<void> = Promise.resolve();
  ctx.onClose = (fn) => closers.push(fn);
  ctx.setup = (fn) => {
    const previous = last;
    let adopt!: (step: Promise<void>) => void;
    last = new Promise<void>((resolve) => (adopt = resolve));
    // A step that fails fails those after it; each hook reports it, none is left unhandled.
    last.catch(() => undefined);
    before(() => {
      const step = previous.then(() => fn());
      adopt(step);
      return step;
    });
  };

  ctx.setup(async () => {
    baseline = openSockets();
    if (!process.env.MONGODB_URL || !process.env.REDIS_URL) servers = await startTestServers();
    ctx.mongoUrl = process.env.MONGODB_URL ?? servers!.mongoUrl;
    ctx.redisUrl = process.env.REDIS_URL ?? servers!.redisUrl;
    ctx.store = await Store.connect({ url: ctx.mongoUrl, dbName: ctx.dbName });
    await ctx.store.ensureIndexes();
    ctx.queues = await JobQueues.connect({ redisUrl: ctx.redisUrl, prefix: ctx.prefix });
  });

  after(async () => {
    for (const fn of closers.reverse()) await fn();
    if (ctx.queues) {
      // Delete this file's keys only; other files share the server.
      await deleteKeys(ctx.queues, `${ctx.prefix}:*`);
      await ctx.queues.close();
    }
    if (ctx.store) {
      await coll(ctx.store).db.dropDatabase().catch(() => undefined);
      await ctx.store.close();
    }
    if (servers) await servers.stop();
    // Closing is asynchronous at the socket level; give it a bounded moment.
    await waitFor(() => openSockets() <= baseline, 3000, "sockets to close").catch(() => {
      throw new Error(`test file left ${openSockets() - baseline} socket(s) open: close every client, queue and worker`);
    });
  });

  return ctx;
}

/** Whether a process with this pid exists (signal 0 checks without sending). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Deletes the keys matching `pattern` on every master (a cluster's keys are
 * spread over its masters; SCAN sees one node's), one key per command:
 * a cluster refuses a DEL of keys in different slots. Returns how many.
 */
export async function deleteKeys(queues: JobQueues, pattern: string): Promise<number> {
  let n = 0;
  for (const node of masterNodes(queues.connection)) {
    let cursor = "0";
    do {
      const [next, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      cursor = next;
      if (keys.length === 0) continue;
      const p = node.pipeline();
      for (const k of keys) p.unlink(k);
      for (const [err, deleted] of (await p.exec()) ?? []) if (!err) n += Number(deleted);
    } while (cursor !== "0");
  }
  return n;
}
