import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { MongoBulkWriteError, MongoNetworkTimeoutError, MongoServerError, MongoWriteConcernError } from "mongodb";
import { isTransient } from "../../services/launcher/writer.js";

/**
 * A replica set changing its primary, said as the driver says it: the
 * transition writer waits it out. Built with the driver's own error classes,
 * the way it builds them from a server's answer.
 */
const { WriteConcernError } = createRequire(import.meta.url)("mongodb/lib/bulk/common.js") as { WriteConcernError: new (e: object) => Error };
const noResult = {} as ConstructorParameters<typeof MongoBulkWriteError>[1];
const server = (code: number, codeName: string, errorLabels?: string[]) => new MongoServerError({ message: codeName, code, codeName, ...(errorLabels ? { errorLabels } : {}) });

test("a primary stepping down or gone is transient: the RetryableWriteError label, or its code alone (older servers)", () => {
  assert.equal(isTransient(server(10107, "NotWritablePrimary", ["RetryableWriteError"])), true);
  assert.equal(isTransient(server(0, "SomethingNew", ["RetryableWriteError"])), true, "the label alone");
  for (const [code, codeName] of [
    [10107, "NotWritablePrimary"],
    [13435, "NotPrimaryNoSecondaryOk"],
    [13436, "NotPrimaryOrSecondary"],
    [11602, "InterruptedDueToReplStateChange"],
    [189, "PrimarySteppedDown"],
    [91, "ShutdownInProgress"],
    [11600, "InterruptedAtShutdown"],
    [6, "HostUnreachable"],
    [7, "HostNotFound"],
    [89, "NetworkTimeout"],
    [9001, "SocketException"],
  ] as const) {
    assert.equal(isTransient(server(code, codeName)), true, codeName);
  }
});

test("the same wrapped as an unordered bulk's error, or as a write-concern failure, is transient", () => {
  assert.equal(isTransient(new MongoBulkWriteError(server(10107, "NotWritablePrimary", ["RetryableWriteError"]), noResult)), true);
  assert.equal(isTransient(new MongoWriteConcernError({ writeConcernError: { code: 91, errmsg: "ShutdownInProgress" } } as never)), true);
  assert.equal(isTransient(new MongoBulkWriteError(new WriteConcernError({ code: 189, errmsg: "PrimarySteppedDown" }) as never, noResult)), true);
  assert.equal(isTransient(new MongoNetworkTimeoutError("connection timed out")), true);
});

test("the rest is a failure: duplicates, validation, bad values, a write concern that timed out, a bug", () => {
  assert.equal(isTransient(server(11000, "DuplicateKey")), false);
  assert.equal(isTransient(server(121, "DocumentValidationFailure")), false);
  assert.equal(isTransient(server(2, "BadValue")), false);
  assert.equal(isTransient(server(13, "Unauthorized")), false);
  assert.equal(isTransient(new MongoWriteConcernError({ writeConcernError: { code: 64, errmsg: "waiting for replication timed out" } } as never)), false);
  assert.equal(isTransient(new MongoBulkWriteError({ message: "E11000", code: 11000, writeErrors: [{ code: 11000 }] } as never, noResult)), false);
  assert.equal(isTransient(new RangeError("bad")), false);
});
