import { MongoClient, type Collection, type MongoClientOptions } from "mongodb";
import type { App, Job } from "../models/index.js";
import { COLLECTIONS, type Collections } from "./collections.js";
import type { LauncherDoc, QueuedLaunchDoc } from "./docs.js";
import { ConfigError, UnreachableError } from "../errors/index.js";
import { redactUrl } from "../config/index.js";

export type { LauncherDoc, QueuedLaunchDoc } from "./docs.js";

export interface StoreOptions {
  /** MongoDB connection string, e.g. mongodb://127.0.0.1:27017 */
  url: string;
  /** Database name; each test uses its own. */
  dbName: string;
  /** How long to wait for the server before reporting it unreachable. Default 5000. */
  connectTimeoutMs?: number;
  /**
   * Send a command that needs a login before returning (default true), so a
   * missing password is said on connecting. Off, it costs no round trip and
   * the first command fails instead: pass its error through
   * {@link Store.explainError} to say it as clearly.
   */
  checkAuth?: boolean;
  /**
   * Count the commands sent, by name ({@link Store.commands}; default true).
   * The driver's command monitoring behind it made a `balsam ls` decode its
   * page of 1,000 jobs ~9 ms slower (36 against 27 ms, median of 8), so the
   * CLI turns it off for its read-only commands (the launcher reports them).
   */
  countCommands?: boolean;
}

/**
 * A login the server refused (18), or a command it wants a login for (13)
 * from a client that gave none, said for the URL; undefined for any other
 * error (a 13 with a login is a missing privilege: the server's own words
 * say it best).
 */
function authError(err: unknown, url: string): ConfigError | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  const loggedIn = /^[a-z+]+:\/\/[^/@]*@/i.test(url);
  if (code !== 18 && !(code === 13 && !loggedIn)) return undefined;
  return new ConfigError(code === 18 ? `the MongoDB server at ${redactUrl(url)} refused the password` : `the MongoDB server at ${redactUrl(url)} requires a password and none was given`, {
    cause: err,
    hint: "put the right one in the MongoDB URL in settings.json, or in mongoPassword for a local database",
  });
}

/** The names of the options a connection string sets, lower-cased (the driver reads them case-insensitively). */
function urlOptionNames(url: string): Set<string> {
  const q = url.indexOf("?");
  if (q < 0) return new Set();
  const name = (kv: string) => {
    const k = kv.split("=")[0] ?? "";
    try {
      return decodeURIComponent(k).toLowerCase();
    } catch {
      return k.toLowerCase(); // the driver refuses such a string itself
    }
  };
  return new Set(url.slice(q + 1).split("&").map(name));
}

/**
 * The driver's client for a connection string, not yet connected. What the
 * string says passes through to the driver unchanged — a replica set
 * (`replicaSet=`, or `mongodb+srv://` and its DNS records), `w=majority`,
 * `readPreference`, `retryWrites` — and so do its own timeouts: ours
 * (`connectTimeoutMs`, 5 s) only fill those it leaves unset, since a replica
 * set's election can take longer than a single server's answer.
 */
export function mongoClientFor(opts: Pick<StoreOptions, "url" | "connectTimeoutMs" | "countCommands">): MongoClient {
  const timeout = opts.connectTimeoutMs ?? 5000;
  const given = urlOptionNames(opts.url);
  const o: MongoClientOptions = {
    // Counted (Store.commands): beside a launcher's writes an event per command is noise;
    // for a read-only CLI command it is not (see countCommands).
    monitorCommands: opts.countCommands !== false,
  };
  if (!given.has("serverselectiontimeoutms")) o.serverSelectionTimeoutMS = timeout;
  if (!given.has("connecttimeoutms")) o.connectTimeoutMS = timeout;
  return new MongoClient(opts.url, o);
}

/**
 * The MongoDB side of Balsam: the four collections and their indexes. Only
 * this folder imports the `mongodb` driver.
 */
export class Store {
  /** Private to libs/store (collections.ts): everything else calls a named operation. */
  readonly [COLLECTIONS]: Collections;
  readonly url: string;
  /**
   * Commands sent, by name (`find`, `update`, …), from the driver's command
   * monitoring: the launcher reports them per job, the figure that decides
   * how many launchers one database can feed (DESIGN §7). Empty when
   * connected with `countCommands: false`.
   */
  readonly commands = new Map<string, number>();
  private closed = false;

  private constructor(client: MongoClient, dbName: string, url: string) {
    this.url = url;
    const db = client.db(dbName);
    this[COLLECTIONS] = {
      client,
      db,
      jobs: db.collection<Job>("jobs"),
      apps: db.collection<App>("apps"),
      launchers: db.collection<LauncherDoc>("launchers"),
      queuedLaunches: db.collection<QueuedLaunchDoc>("queuedLaunches"),
    };
    client.on("commandStarted", (e) => this.commands.set(e.commandName, (this.commands.get(e.commandName) ?? 0) + 1));
  }

  /** `err` said as a refused or missing password when it is one (see {@link StoreOptions.checkAuth}), else `err` itself. */
  explainError(err: unknown): unknown {
    return authError(err, this.url) ?? err;
  }

  /** Commands sent so far, all names together. */
  commandCount(): number {
    let n = 0;
    for (const v of this.commands.values()) n += v;
    return n;
  }

  static async connect(opts: StoreOptions): Promise<Store> {
    const client = mongoClientFor(opts);
    try {
      await client.connect();
      // `ping` answers without a login; listing one collection needs one, so
      // a missing password is said here, not as a puzzling first query error.
      if (opts.checkAuth !== false) await client.db(opts.dbName).command({ listCollections: 1, nameOnly: true, filter: { name: "apps" } });
    } catch (err) {
      await client.close().catch(() => undefined);
      const auth = authError(err, opts.url);
      if (auth) throw auth;
      throw new UnreachableError("the MongoDB server", redactUrl(opts.url), {
        cause: err,
        hint: "start it (`balsam server --connect` for a local database) or fix the URL in settings.json",
      });
    }
    return new Store(client, opts.dbName, opts.url);
  }

  /**
   * Creates the indexes the hot queries need; idempotent. Existing ones are
   * skipped rather than re-created: FerretDB 1.24 drops the connection when
   * createIndexes names an index that already exists.
   */
  async ensureIndexes(): Promise<void> {
    const jobs = this[COLLECTIONS].jobs as unknown as Collection;
    const apps = this[COLLECTIONS].apps as unknown as Collection;
    const want: Array<{ coll: Collection; key: Record<string, 1>; name: string; unique?: boolean }> = [
      { coll: jobs, key: { workflow: 1, state: 1 }, name: "workflow_state" },
      { coll: jobs, key: { state: 1 }, name: "state" },
      { coll: jobs, key: { parents: 1 }, name: "parents" },
      { coll: jobs, key: { "lock.until": 1 }, name: "lock_until" },
      { coll: jobs, key: { name: 1 }, name: "name" },
      // With each key's own {"tags.K": 1} (tag-indexes.ts): FerretDB's patch 0016 needs both to answer `tags.K: V` from indexes.
      { coll: jobs, key: { tags: 1 }, name: "tags" },
      { coll: apps, key: { name: 1 }, name: "name_unique", unique: true },
    ];
    const existing = new Map<string, Set<string>>();
    for (const coll of [jobs, apps]) {
      const names = await coll
        .listIndexes()
        .toArray()
        .then((ix) => ix.map((i) => String(i.name)))
        .catch(() => [] as string[]); // a collection that does not exist yet has none
      existing.set(coll.collectionName, new Set(names));
    }
    for (const w of want) {
      if (existing.get(w.coll.collectionName)?.has(w.name)) continue;
      await w.coll.createIndex(w.key, { name: w.name, ...(w.unique ? { unique: true } : {}) });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this[COLLECTIONS].client.close();
  }
}

