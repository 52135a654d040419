import { test } from "node:test";
import assert from "node:assert/strict";
import { MongoBulkWriteError, MongoNetworkError, MongoServerSelectionError } from "mongodb";
import { isTransient } from "../../services/launcher/writer.js";

// The driver's own error classes, built as it builds them when a server restarts under an unordered bulk.
const noResult = {} as ConstructorParameters<typeof MongoBulkWriteError>[1];
const selection = () => new MongoServerSelectionError("connect ECONNREFUSED 127.0.0.1:1", { type: "Single", servers: new Map() } as never);

test("a server that is away is transient, also when an unordered bulk wraps the error", () => {
  assert.equal(isTransient(new MongoNetworkError("connect ECONNREFUSED 127.0.0.1:1")), true);
  assert.equal(isTransient(selection()), true);
  assert.equal(isTransient(new MongoBulkWriteError(new MongoNetworkError("connect ECONNREFUSED 127.0.0.1:1"), noResult)), true);
  assert.equal(isTransient(new MongoBulkWriteError(selection(), noResult)), true);
});

test("a write the server refused, or a bug, is not transient", () => {
  const dup = new MongoBulkWriteError({ message: "E11000 duplicate key", code: 11000, writeErrors: [{ code: 11000 }] } as never, noResult);
  assert.equal(isTransient(dup), false);
  assert.equal(isTransient(new TypeError("x is undefined")), false);
  assert.equal(isTransient(undefined), false);
});
