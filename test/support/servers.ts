import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMongo, startRedis, type ServerHandle } from "../../services/dbserver/servers.js";

/**
 * The test servers: MONGODB_URL / REDIS_URL when set (docker compose sets
 * them), otherwise a redis-server and a mongod/FerretDB of our own on free
 * ports in a temp dir — never the machine's shared Redis on 6379.
 */
export interface TestServers {
  mongoUrl: string;
  redisUrl: string;
  /** The MongoDB-wire server's pid when started here (the bench reads its CPU time). */
  mongoPid?: number;
  stop(): Promise<void>;
}

export async function startTestServers(): Promise<TestServers> {
  const started: ServerHandle[] = [];
  let dir: string | undefined;
  const tmp = () => (dir ??= mkdtempSync(join(tmpdir(), "balsam-test-servers-")));
  try {
    let redisUrl = process.env.REDIS_URL;
    if (!redisUrl) {
      const h = await startRedis({ dir: join(tmp(), "redis"), appendOnly: false, logFile: join(tmp(), "redis.log") });
      started.push(h);
      redisUrl = h.url;
    }
    let mongoUrl = process.env.MONGODB_URL;
    let mongoPid: number | undefined;
    if (!mongoUrl) {
      const h = await startMongo({ dir: join(tmp(), "mongo"), logFile: join(tmp(), "mongo.log") });
      started.push(h);
      mongoUrl = h.url;
      mongoPid = h.pid;
    }
    return {
      mongoUrl,
      redisUrl,
      mongoPid,
      stop: async () => {
        await Promise.all(started.map((h) => h.stop()));
        if (dir) rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(started.map((h) => h.stop()));
    throw err;
  }
}
