import type { Store } from "./connection.js";
import { chunked, MAX_BULK_OPS } from "./bulk.js";
import { coll } from "./collections.js";

/**
 * Extends the leases `owner` holds on the jobs `ids` (one conditional update
 * per job, by `_id`: an index lookup on FerretDB too), in bulks of at most
 * MAX_BULK_OPS. A job whose lease is no longer the owner's is left alone.
 * Returns how many leases were renewed.
 */
export async function renewLeases(store: Store, owner: string, ids: readonly string[], until: Date): Promise<number> {
  let renewed = 0;
  for (const chunk of chunked(ids, MAX_BULK_OPS)) {
    const res = await coll(store).jobs.bulkWrite(
      chunk.map((id) => ({ updateOne: { filter: { _id: id, "lock.owner": owner }, update: { $set: { "lock.until": until } } } })),
      { ordered: false },
    );
    renewed += res.matchedCount;
  }
  return renewed;
}
