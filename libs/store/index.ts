export * from "./connection.js";
export * from "./apps.js";
export * from "./jobs.js";
export * from "./transitions.js";
export * from "./bulk.js";
export * from "./find-page.js";
export * from "./leases.js";
export * from "./clock.js";
export * from "./job-reads.js";
export * from "./job-writes.js";
export * from "./launchers.js";
export * from "./admin.js";
export * from "./views.js";

import { MongoClient } from "mongodb";
/** True when a MongoDB-wire server answers `ping` at `url` within `timeoutMs`. */
export async function pingMongo(url: string, timeoutMs = 1000): Promise<boolean> {
  let c: MongoClient | undefined;
  try {
    c = new MongoClient(url, { serverSelectionTimeoutMS: timeoutMs, connectTimeoutMS: timeoutMs });
    await c.connect();
    await c.db("admin").command({ ping: 1 });
    return true;
  } catch {
    // Not answering, refusing us, or not a MongoDB URL at all: not up.
    return false;
  } finally {
    await c?.close().catch(() => undefined);
  }
}

/**
 * Creates `username` in `admin` with the root role through mongod's localhost
 * exception (which only lets the first user be created). A server that
 * already has users refuses, and that is fine: the user exists.
 */
export async function createFirstUser(url: string, username: string, password: string): Promise<void> {
  const c = new MongoClient(url, { serverSelectionTimeoutMS: 5000 });
  try {
    await c.connect();
    await c.db("admin").command({ createUser: username, pwd: password, roles: ["root"] });
  } catch {
    // Users exist already (the exception is closed), or the user itself does.
  } finally {
    await c.close().catch(() => undefined);
  }
}
export * from "./report-docs.js";
export * from "./tag-indexes.js";
