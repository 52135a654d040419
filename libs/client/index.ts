/**
 * The public API of Balsam on MongoDB + BullMQ, for search algorithms and
 * scripts:
 *
 * ```ts
 * import { connect } from "balsam-mq";
 * const balsam = await connect();            // BALSAM_DB_PATH's settings
 * const jobs = await balsam.jobs.addMany(configs.map((c, i) => ({
 *   name: `task${i}`, workflow: "TEST", application: "polynome2.run", args: `'${JSON.stringify(c)}'`,
 * })));
 * for await (const r of balsam.results(jobs.map((j) => j._id))) console.log(r.name, r.result);
 * await balsam.jobs.filter({ name: "task", workflow: "TEST" }).delete();
 * await balsam.close();
 * ```
 */
import { type ConnectOptions, openBackends, resolveConnection } from "./connect.js";
import { JobsApi } from "./jobs.js";
import { createApp, getApp, findApp, listApps, updateApp, deleteApps, deleteAppsByName, type Store } from "../store/index.js";
import type { JobQueues } from "../queue/index.js";
import { isRunnable, type App, type AppSpec, type Job, type JobSpec, type Report, type ReportKind } from "../models/index.js";
import { ConfigError } from "../errors/index.js";
import { jobReport } from "./reports.js";
import type { JobFilter } from "./jobs.js";
import { ResultWatcher, watchResults, waitForJobs, type FinishedJob, type ResultsOptions, type WatchOptions } from "./results.js";
import type { Settings } from "../config/index.js";

export * from "../models/index.js";
export * from "../errors/index.js";
export { JobsApi, JobQuery, KILL_CHANNEL, FINISHED_CHANNEL, queueItem } from "./jobs.js";
// The operations behind JobsApi, for the launcher, the service and recovery.
export { announceFinished } from "./finished.js";
export { releaseChildren, settleWaiting } from "./release.js";
export type { JobsContext } from "./context.js";
export type { AddJobOptions, DeleteVictim, JobFilter, ProgressOptions, RerunResult } from "./jobs.js";
export type { ConnectOptions, ResolvedConnection } from "./connect.js";
export { killWhere, modifyWhere, type PerJobResult } from "./by-filter.js";
export { jobReport } from "./reports.js";
export { resolveConnection } from "./connect.js";
// Callers check a workflow name before asking the user anything, with the same rule the queues use.
export { queueName as checkWorkflowName, isValidWorkflow } from "../queue/names.js";

/** Application definitions: what executable a job's `application` names. */
export class AppsApi {
  constructor(private readonly store: Store) {}
  /** Adds an app; its name must be new (ConflictError otherwise). */
  add(spec: AppSpec): Promise<App> {
    return createApp(this.store, spec);
  }
  /** The app with this exact name; NotFoundError when there is none. */
  get(name: string): Promise<App> {
    return getApp(this.store, name);
  }
  /** Like get(), but null instead of an error when there is no such app. */
  find(name: string): Promise<App | null> {
    return findApp(this.store, name);
  }
  /** Apps whose name contains `namePart` literally; all apps without it. */
  list(namePart?: string): Promise<App[]> {
    return listApps(this.store, namePart);
  }
  /** Sets fields of the named app. */
  update(name: string, set: Partial<Omit<App, "_id">>): Promise<void> {
    return updateApp(this.store, name, set);
  }
  /** Deletes the apps whose name contains `name` / whose id starts with `id`; returns their names. */
  delete(filter: { name?: string; id?: string }): Promise<string[]> {
    return deleteApps(this.store, filter);
  }
  /** Deletes exactly the named apps; returns how many were deleted. */
  deleteNames(names: readonly string[]): Promise<number> {
    return deleteAppsByName(this.store, names);
  }
}

/**
 * The fields `spawnChild` copies from the job it spawns from: what a job was
 * given when added, not what running it wrote (state, history, lease,
 * attempts, exit code, working directory, ids, timestamps).
 */
const SPAWN_COPIED = [
  "name", "workflow", "application", "args", "description", "numNodes", "ranksPerNode", "threadsPerRank", "threadsPerCore",
  "cpuAffinity", "nodePackingCount", "gpusPerRank", "coscheduleNumNodes", "wallTimeMinutes", "mpiFlags", "environVars", "tags", "inputFiles",
  "stageInUrl", "stageOutFiles", "stageOutUrl", "postErrorHandler", "postTimeoutHandler", "autoTimeoutRetry",
  "waitForParents", "preprocess", "postprocess",
] as const satisfies ReadonlyArray<keyof JobSpec & keyof Job>;

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
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
    this.jobs = new JobsApi(store, queues, { maxGpusPerNode: settings?.gpusPerNode });
  }
  /**
   * Finished jobs as they arrive, each within milliseconds of its launcher
   * recording it (pushed through Redis, not polled), each id once; jobs
   * already final come first, read from MongoDB. With `timeoutMs` the
   * iterator ends early; breaking out of the loop unsubscribes.
   *
   * ```ts
   * for await (const r of balsam.results(ids)) console.log(r.name, r.result);
   * ```
   *
   * For a set that grows while results come in (a search keeping K
   * evaluations in flight), use {@link Balsam.watch}.
   */
  results(ids: readonly string[], opts: ResultsOptions = {}): AsyncGenerator<FinishedJob> {
    return watchResults(this.store, this.queues, ids, opts);
  }

  /**
   * Waits until every job in `ids` is final and returns them in the order
   * they finished; rejects after `timeoutMs`.
   */
  wait(ids: readonly string[], opts: ResultsOptions = {}): Promise<FinishedJob[]> {
    return waitForJobs(this.store, this.queues, ids, opts);
  }

  /**
   * A subscription to finished jobs whose set of ids grows with `add()`:
   * subscribed when this resolves, so jobs added afterwards cannot be missed.
   * Close it when done.
   *
   * ```ts
   * const w = await balsam.watch();
   * await w.add(newIds, { checkStore: false });
   * for (let r = await w.next(); r; r = await w.next()) tell(r.id, r.result);
   * await w.close();
   * ```
   */
  watch(opts: WatchOptions = {}): Promise<ResultWatcher> {
    return ResultWatcher.open(this.store, this.queues, opts);
  }

  /**
   * The job this code runs as (a launcher sets BALSAM_JOB_ID for every job
   * it starts).
   */
  async currentJob(env: NodeJS.ProcessEnv = process.env): Promise<Job> {
    const id = env.BALSAM_JOB_ID;
    if (!id) throw new ConfigError("BALSAM_JOB_ID is not set: this is not running inside a Balsam job");
    let job = await this.jobs.get(id);
    const ahead = Number(env.BALSAM_CLAIM_AFTER_MS);
    if (!isRunnable(job.state) || !(ahead > 0)) return job;
    // Started ahead of its claim (DESIGN §7): still running, it is recorded
    // RUNNING within that delay, so wait for it rather than answer READY.
    const deadline = Date.now() + ahead + 10_000;
    while (isRunnable(job.state) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      job = await this.jobs.get(id);
    }
    return job;
  }

  /**
   * Balsam 0.x's `dag.spawn_child(**kwargs)`: a new job made from the current
   * job (or `parent`) — every field it was given copied (name, workflow,
   * application, args, nodes, environment, handlers, data but its result, …),
   * then `overrides` applied — whose parents are the current job's parents
   * plus the current job. It waits for them, so a child spawned by a running
   * job starts after that job ends; its first history line says "spawned by
   * [name | id8]", as 0.x's did. A job that must wait for its own
   * evaluations (a search) adds them with `jobs.add` instead, or it would
   * wait for children that wait for it.
   */
  async spawnChild(overrides: Partial<JobSpec> & { parent?: string } = {}, env: NodeJS.ProcessEnv = process.env): Promise<Job> {
    const from = overrides.parent ? await this.jobs.get(overrides.parent) : await this.currentJob(env);
    const rest: Partial<JobSpec> & { parent?: string } = { ...overrides };
    delete rest.parent;
    const data = { ...from.data };
    delete data.result;
    const copied: Partial<JobSpec> = { data };
    for (const k of SPAWN_COPIED) (copied as Record<string, unknown>)[k] = from[k];
    const parents = [...new Set([...from.parents, from._id, ...(rest.parents ?? [])])];
    return this.jobs.add({ ...copied, ...stripUndefined(rest), parents } as JobSpec, { spawnedBy: from._id });
  }

  /**
   * A report over the jobs `filter` selects (libs/models/reports.ts):
   * utilization (jobs running over time), throughput (jobs finished,
   * cumulatively) or errors (failed jobs by their last error line).
   */
  report(kind: ReportKind, filter: JobFilter = {}, opts: { since?: Date } = {}): Promise<Report> {
    return jobReport(this.store, kind, filter, opts);
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

export type { FinishedJob, ResultsOptions, WatchOptions, AddOptions } from "./results.js";
export { ResultWatcher, parseFinished } from "./results.js";
export { recoverLapsedLeases, reenqueueRunnable } from "./recovery.js";
export { CHUNK_SIZE } from "./add.js";
export { workdirFor } from "./workdir.js";
