import { after, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runBalsam, type RunResult } from "./cli.js";
import { isAlive, waitFor } from "../../services/dbserver/servers.js";

/** What `server-info.json` records of a local database's servers. */
export interface LocalServerInfo {
  mongo: { url: string; pid: number; port: number; host: string; machine?: string };
  redis: { url: string; pid: number; port: number; host: string; machine?: string };
}

/** A *local* database, made as a user makes one: `balsam init DIR`, with its own BALSAM_HOME. */
export interface LocalDb {
  /** The database directory; set in the fixture's `before`. */
  dir: string;
  /** BALSAM_HOME and BALSAM_DB_PATH for the `balsam` commands and launchers of the test. */
  env: NodeJS.ProcessEnv;
  /** Runs `balsam ARGS` on the database. */
  run(args: string[]): Promise<RunResult>;
  serverInfo(): LocalServerInfo;
  /** SIGKILLs both servers and waits until they are gone; returns what was recorded of them. */
  killServers(): Promise<LocalServerInfo>;
}

export interface LocalDbOptions {
  /** Start its servers (`balsam server --connect`) after `init`. */
  connect?: boolean;
  /** Runs in `after` before the servers are stopped (to thaw a frozen one). */
  beforeStop?: () => void;
}

/**
 * Call inside `describe`: the database is made in its `before` (hooks the file
 * adds later run after it) and in its `after` the servers are stopped and the
 * scratch directory removed.
 */
export function useLocalDb(kind: string, opts: LocalDbOptions = {}): LocalDb {
  let root: string | undefined;
  const db = {
    run: (args) => runBalsam(args, { env: db.env }),
    serverInfo: () => JSON.parse(readFileSync(join(db.dir, "server-info.json"), "utf8")) as LocalServerInfo,
    killServers: async () => {
      const info = db.serverInfo();
      process.kill(info.redis.pid, "SIGKILL");
      process.kill(info.mongo.pid, "SIGKILL");
      await waitFor(() => !isAlive(info.redis.pid) && !isAlive(info.mongo.pid), 10_000, "the servers to die");
      return info;
    },
  } as LocalDb;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), `balsam-${kind}-`));
    db.dir = join(root, "db");
    db.env = { BALSAM_HOME: join(root, "home"), BALSAM_DB_PATH: db.dir };
    assert.equal((await db.run(["init", db.dir])).code, 0);
    if (opts.connect) assert.equal((await db.run(["server", "--connect"])).code, 0);
  });
  after(async () => {
    opts.beforeStop?.();
    await db.run(["server", "--stop"]);
    if (root) rmSync(root, { recursive: true, force: true });
  });
  return db;
}
