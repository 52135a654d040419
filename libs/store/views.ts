import type { Job } from "../models/index.js";
import type { LauncherDoc, QueuedLaunchDoc, Store } from "./connection.js";
import { findPage } from "./find-page.js";
import { jobFilterQuery, type JobFilter } from "./jobs.js";
import { coll } from "./collections.js";

/**
 * Read-only queries for views of a whole database (the `balsam web`
 * dashboard and its API), kept here so every MongoDB query stays in
 * libs/store.
 */

/**
 * One page of the jobs matching `f`, in the order the server keeps them,
 * `skip` jobs in. Not sorted: FerretDB sorts (by `_id` or anything but
 * `$natural`) by decoding every match, 40 s at 100k jobs, and cannot push a
 * `_id > last` range into SQLite, so a keyset page would cost the same;
 * unsorted, the server stops after `skip + limit + 1` matches (an early
 * page of 100k jobs in well under 300 ms). One more than `limit` is read so
 * the caller knows whether a next page exists.
 */
export async function pageJobs(store: Store, f: JobFilter, opts: { limit: number; skip: number; projection?: Record<string, 0 | 1> }): Promise<{ jobs: Job[]; more: boolean }> {
  const jobs = await findPage<Job>(store, "jobs", jobFilterQuery(f), { ...opts, limit: opts.limit + 1 });
  const more = jobs.length > opts.limit;
  if (more) jobs.length = opts.limit;
  return { jobs, more };
}

/** The jobs that reached `state` since `since`, only their `updatedAt` (the time of their last write). */
export async function finishTimesSince(store: Store, since: Date, state: Job["state"] = "JOB_FINISHED"): Promise<Date[]> {
  const rows = await coll(store).jobs.find({ state, updatedAt: { $gte: since } }, { projection: { _id: 0, updatedAt: 1 } }).toArray();
  return rows.map((r) => r.updatedAt);
}

/** Fields of finished jobs the metrics need, for ids heard on the finished channel. */
export async function finishFacts(store: Store, ids: readonly string[]): Promise<Array<Pick<Job, "_id" | "runtimeSeconds" | "updatedAt" | "state">>> {
  if (ids.length === 0) return [];
  return coll(store).jobs.find({ _id: { $in: [...ids] } }, { projection: { runtimeSeconds: 1, updatedAt: 1, state: 1 } }).toArray();
}

/** Full documents of the given ids (a bounded list: callers chunk). */
export async function jobsByIds(store: Store, ids: readonly string[]): Promise<Job[]> {
  if (ids.length === 0) return [];
  return coll(store).jobs.find({ _id: { $in: [...ids] } }).toArray();
}

/** Launchers recorded as running (a killed one stays "running" until its heartbeat is seen to be old). */
export async function listRunningLaunchers(store: Store): Promise<LauncherDoc[]> {
  return coll(store).launchers.find({ state: "running" }).sort({ startedAt: 1 }).toArray();
}

/** The recorded launcher batch jobs, oldest first, as `balsam ls queues` shows them. */
export async function listQueuedLaunches(store: Store): Promise<QueuedLaunchDoc[]> {
  return coll(store).queuedLaunches.find({}).sort({ submittedAt: 1 }).toArray();
}
