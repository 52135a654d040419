export * from "./connection.js";
export * from "./apps.js";
export * from "./jobs.js";
export * from "./transitions.js";
export * from "./bulk.js";
export * from "./leases.js";

import { MongoClient } from "mongodb";
/** True when a MongoDB-wire server answers `ping` at `url` within `timeoutMs`. */
export async function pingMongo(url: string, timeoutMs = 1000): Promise<boolean> {
  const c = new MongoClient(url, { serverSelectionTimeoutMS: timeoutMs, connectTimeoutMS: timeoutMs });
  try {
    await c.connect();
    await c.db("admin").command({ ping: 1 });
    return true;
  } catch {
    return false;
  } finally {
    await c.close().catch(() => undefined);
  }
}
