/**
 * The public API of Balsam on MongoDB + BullMQ, for search algorithms and
 * scripts:
 *
 * ```ts
 * import { connect } from "balsam-mq";
 * const balsam = await connect();            // BALSAM_DB_PATH's settings
 * await balsam.jobs.filter({ name: "task", workflow: "TEST" }).delete();
 * await balsam.close();
 * ```
 */
import { type ConnectOptions, openBackends, resolveConnection } from "./connect.js";
import { JobsApi } from "./jobs.js";
import { createApp, getApp, findApp, listApps, updateApp, deleteApps, deleteAppsByName, type Store } from "../store/index.js";
import type { JobQueues } from "../queue/index.js";
import type { App, AppSpec } from "../models/index.js";
import type { Settings } from "../config/index.js";

export * from "../models/index.js";
export * from "../errors/index.js";
export { JobsApi, JobQuery, KILL_CHANNEL, FINISHED_CHANNEL, queueItem } from "./jobs.js";
export type { JobFilter } from "./jobs.js";
export type { ConnectOptions, ResolvedConnection } from "./connect.js";
export { resolveConnection } from "./connect.js";
// Callers check a workflow name before asking the user anything, with the same rule the queues use.
export { queueName as checkWorkflowName, isValidWorkflow } from "../queue/index.js";

export class AppsApi {
  constructor(private readonly store: Store) {}
  add(spec: AppSpec): Promise<App> {
    return createApp(this.store, spec);
  }
  get(name: string): Promise<App> {
    return getApp(this.store, name);
  }
  /** Like get(), but null instead of an error when there is no such app. */
  find(name: string): Promise<App | null> {
    return findApp(this.store, name);
  }
  list(namePart?: string): Promise<App[]> {
    return listApps(this.store, namePart);
  }
  update(name: string, set: Partial<Omit<App, "_id">>): Promise<void> {
    return updateApp(this.store, name, set);
  }
  delete(filter: { name?: string; id?: string }): Promise<string[]> {
    return deleteApps(this.store, filter);
  }
  /** Deletes exactly the named apps; returns how many were deleted. */
  deleteNames(names: readonly string[]): Promise<number> {
    return deleteAppsByName(this.store, names);
  }
}

/** A connection to one Balsam database: its MongoDB and its Redis. */
export class Balsam {
  readonly apps: AppsApi;
  readonly jobs: JobsApi;
  private closed = false;
  constructor(
    readonly store: Store,
    readonly queues: JobQueues,
    readonly dbPath: string | undefined,
    readonly settings: Settings | undefined,
  ) {
    this.apps = new AppsApi(store);
    this.jobs = new JobsApi(store, queues);
  }
  /** Closes both connections; safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.queues.close(), this.store.close()]);
  }
}

/**
 * Connects to the database named by `BALSAM_DB_PATH` (or `opts.dbPath`), or
 * to explicit `mongoUrl` + `redisUrl`.
 */
export async function connect(opts: ConnectOptions = {}): Promise<Balsam> {
  const conn = resolveConnection(opts);
  const { store, queues } = await openBackends(conn, opts);
  return new Balsam(store, queues, conn.dbPath, conn.settings);
}

export { recoverLapsedLeases, reenqueueRunnable } from "./recovery.js";
