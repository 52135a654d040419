import type { Store } from "./connection.js";
import { coll } from "./collections.js";

/**
 * The database server's clock, the one clock leases are judged by
 * (DESIGN §6.2): `hello` answers with the server's `localTime`. FerretDB
 * 1.24 has no `$$NOW` (an aggregation returns the literal string, a `$expr`
 * comparison is refused) and no pipeline updates, so a lease's end cannot be
 * computed inside a write; writers compute it from this time instead, and
 * recovery compares with it. Guarded by test/conformance
 * (`hello` answers the server's current time).
 */
export async function serverTime(store: Store): Promise<Date> {
  const r = await coll(store).db.command({ hello: 1 });
  const at = (r as { localTime?: unknown }).localTime;
  if (!(at instanceof Date)) throw new Error("the database server did not say its time (hello without localTime)");
  return at;
}
