import { test } from "node:test";
import assert from "node:assert/strict";
import { Store } from "../../libs/store/index.js";
import { JobQueues } from "../../libs/queue/index.js";
import { UnreachableError } from "../../libs/errors/index.js";
import { freePort } from "../../services/dbserver/servers.js";

test("an unreachable MongoDB gives a clear error", async () => {
  const port = await freePort();
  await assert.rejects(Store.connect({ url: `mongodb://127.0.0.1:${port}`, dbName: "x", connectTimeoutMs: 300 }), (e: unknown) => e instanceof UnreachableError && e.message === `cannot reach the MongoDB server at mongodb://127.0.0.1:${port}`);
});

test("an unreachable Redis gives a clear error", async () => {
  const port = await freePort();
  await assert.rejects(JobQueues.connect({ redisUrl: `redis://127.0.0.1:${port}`, connectTimeoutMs: 300 }), (e: unknown) => e instanceof UnreachableError && /cannot reach Redis at redis:\/\/127.0.0.1/.test(e.message));
});
