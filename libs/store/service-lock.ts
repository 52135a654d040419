import type { Collection } from "mongodb";
import type { Store } from "./connection.js";
import { ConflictError } from "../errors/index.js";
import { coll } from "./collections.js";

/**
 * The one-service-per-database lock: a single document whose `_id` makes a
 * second insert fail. FerretDB's updates are a read then a write, so taking
 * over a stale lock is a conditioned delete followed by the same insert —
 * the unique `_id` decides between two services starting together.
 */
export interface ServiceLockDoc {
  _id: "service";
  owner: string;
  host: string;
  pid: number;
  startedAt: Date;
  heartbeat: Date;
}

export interface ServiceLockClaim {
  owner: string;
  host: string;
  pid: number;
}

export type AcquireResult = { acquired: true } | { acquired: false; holder: ServiceLockDoc };

function locks(store: Store): Collection<ServiceLockDoc> {
  return coll(store).db.collection<ServiceLockDoc>("serviceLock");
}

function isDuplicateKey(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === 11000;
}

async function tryInsert(store: Store, me: ServiceLockClaim, now: Date): Promise<boolean> {
  try {
    await locks(store).insertOne({ _id: "service", ...me, startedAt: now, heartbeat: now });
    return true;
  } catch (err) {
    if (isDuplicateKey(err)) return false;
    throw err;
  }
}

/**
 * Takes the lock, or reports who holds it. A holder whose heartbeat is older
 * than `staleMs`, or that `isDead` says has exited, is replaced.
 */
export async function acquireServiceLock(
  store: Store,
  me: ServiceLockClaim,
  staleMs: number,
  isDead: (holder: ServiceLockDoc) => boolean = () => false,
): Promise<AcquireResult> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const now = new Date();
    if (await tryInsert(store, me, now)) return { acquired: true };
    const holder = await locks(store).findOne({ _id: "service" });
    if (!holder) continue; // released between the insert and the read
    const stale = now.getTime() - holder.heartbeat.getTime() > staleMs;
    if (!stale && !isDead(holder)) return { acquired: false, holder };
    await locks(store).deleteOne({ _id: "service", owner: holder.owner, heartbeat: holder.heartbeat });
  }
  const holder = await locks(store).findOne({ _id: "service" });
  if (holder) return { acquired: false, holder };
  throw new ConflictError("could not take the service lock: other services keep starting and stopping; try again");
}

/** Renews the heartbeat; false when the lock is no longer ours (taken over after a stall). */
export async function renewServiceLock(store: Store, owner: string): Promise<boolean> {
  const res = await locks(store).updateOne({ _id: "service", owner }, { $set: { heartbeat: new Date() } });
  return res.matchedCount === 1;
}

/** Releases the lock if it is still ours. */
export async function releaseServiceLock(store: Store, owner: string): Promise<void> {
  await locks(store).deleteOne({ _id: "service", owner });
}
