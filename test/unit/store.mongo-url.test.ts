import { test } from "node:test";
import assert from "node:assert/strict";
import { mongoClientFor } from "../../libs/store/index.js";

/**
 * MongoDB beyond one server, as far as it can be checked here (no mongod can
 * run on these machines): what a connection string says about a replica set
 * reaches the driver unchanged — the options it parsed, read back from an
 * unconnected client.
 */

test("a replica set's string: hosts, replicaSet, w=majority, readPreference and its tags, retryWrites pass through", () => {
  const o = mongoClientFor({ url: "mongodb://u:p@h1:27017,h2:27018,h3:27019/db?replicaSet=rs0&w=majority&wtimeoutMS=2000&journal=true&readPreference=nearest&readPreferenceTags=dc:ny&retryWrites=true&authSource=admin" }).options;
  assert.deepEqual(o.hosts.map(String), ["h1:27017", "h2:27018", "h3:27019"]);
  assert.equal(o.replicaSet, "rs0");
  assert.equal(o.writeConcern?.w, "majority");
  assert.equal(o.writeConcern?.wtimeoutMS, 2000);
  assert.equal(o.writeConcern?.journal, true);
  assert.equal(o.readPreference.mode, "nearest");
  assert.deepEqual(o.readPreference.tags?.map((t) => ({ ...t })), [{ dc: "ny" }]);
  assert.equal(o.retryWrites, true);
  assert.equal(o.credentials?.source, "admin");
  // Ours fill the timeouts the string leaves unset.
  assert.equal(o.serverSelectionTimeoutMS, 5000);
  assert.equal(o.connectTimeoutMS, 5000);
});

test("mongodb+srv:// keeps its SRV host (resolved when connecting), TLS on, and its options", () => {
  const o = mongoClientFor({ url: "mongodb+srv://u:p@cluster0.example.net/db?w=majority&readPreference=secondaryPreferred", connectTimeoutMs: 700 }).options;
  assert.equal(o.srvHost, "cluster0.example.net");
  assert.equal(o.srvServiceName, "mongodb");
  assert.equal(o.tls, true);
  assert.equal(o.writeConcern?.w, "majority");
  assert.equal(o.readPreference.mode, "secondaryPreferred");
  assert.equal(o.serverSelectionTimeoutMS, 700);
});

test("timeouts the string sets are its own: an election can outlast our 5 s", () => {
  const o = mongoClientFor({ url: "mongodb://h1,h2/db?replicaSet=rs0&serverSelectionTimeoutMS=30000&CONNECTTIMEOUTMS=12000" }).options;
  assert.equal(o.serverSelectionTimeoutMS, 30_000);
  assert.equal(o.connectTimeoutMS, 12_000);
  const plain = mongoClientFor({ url: "mongodb://h1/db", connectTimeoutMs: 900 }).options;
  assert.equal(plain.serverSelectionTimeoutMS, 900);
  assert.equal(plain.monitorCommands, true);
  assert.equal(mongoClientFor({ url: "mongodb://h1/db", countCommands: false }).options.monitorCommands, false);
});
