import type { LauncherDoc, QueuedLaunchDoc, Store } from "./connection.js";
import { coll } from "./collections.js";

/*
 * Named operations on the launchers and queuedLaunches collections (both
 * small: one document per launcher or batch job; no index beyond `_id`).
 */

/** Records a launcher that starts. Insert by `_id` (owner token). Guard: none needed. */
export async function registerLauncher(store: Store, doc: LauncherDoc): Promise<void> {
  await coll(store).launchers.insertOne(doc);
}

/** A launcher's heartbeat, with the jobs it is running. Filter `{_id}`. Guard: none needed. */
export async function beatLauncher(store: Store, owner: string, inFlight: number): Promise<void> {
  await coll(store).launchers.updateOne({ _id: owner }, { $set: { heartbeat: new Date(), inFlight } });
}

/** A launcher that stopped. Filter `{_id}`. Guard: none needed. */
export async function markLauncherExited(store: Store, owner: string): Promise<void> {
  await coll(store).launchers.updateOne({ _id: owner }, { $set: { state: "exited", heartbeat: new Date() } });
}

/** Records a submitted launcher batch job. Guard: none needed. */
export async function insertQueuedLaunch(store: Store, doc: QueuedLaunchDoc): Promise<void> {
  await coll(store).queuedLaunches.insertOne(doc);
}

/** Launches in one of `states` (those the scheduler may still change). Filter `{state: {$in}}`, a scan of a small collection. */
export function launchesIn(store: Store, states: readonly string[]): Promise<QueuedLaunchDoc[]> {
  return coll(store).queuedLaunches.find({ state: { $in: [...states] } }).toArray();
}

/**
 * Moves a launch from the state read to `to`, so two refreshers never record
 * a change twice; true when this call did. Filter `{_id, state}`.
 * Guard: "a conditional updateOne is atomic: 4 clients racing over N documents win exactly N times (3 rounds)".
 */
export async function setLaunchStateIf(store: Store, id: string, from: string, set: Partial<QueuedLaunchDoc>): Promise<boolean> {
  return (await coll(store).queuedLaunches.updateOne({ _id: id, state: from }, { $set: set })).matchedCount === 1;
}
