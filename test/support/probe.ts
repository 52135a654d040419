/**
 * An intruder's probe, run as its own process (inside another network
 * namespace by security tests): `node probe.js mongo|redis URL` prints
 * `ok` when it could read through the URL, `refused: <why>` otherwise.
 */
import { MongoClient } from "mongodb";
import { Redis } from "ioredis";

const [kind, url] = process.argv.slice(2);

async function probe(): Promise<string> {
  if (kind === "mongo") {
    const c = new MongoClient(url!, { serverSelectionTimeoutMS: 5000, connectTimeoutMS: 5000 });
    try {
      await c.connect();
      await c.db("balsam").collection("apps").find({}).toArray();
      return "ok";
    } finally {
      await c.close().catch(() => undefined);
    }
  }
  const r = new Redis(url!, { lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 5000 });
  r.on("error", () => undefined);
  try {
    await r.connect();
    await r.get("x");
    return "ok";
  } finally {
    r.disconnect();
  }
}

probe().then(
  (s) => console.log(s),
  (err: unknown) => console.log(`refused: ${String((err as Error).message ?? err).split("\n")[0]}`),
);
