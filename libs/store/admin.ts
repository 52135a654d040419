import type { Store } from "./connection.js";
import { coll } from "./collections.js";

/*
 * Whole-database operations for benchmarks and test clean-up.
 */

/** Drops the database. */
export async function dropDatabase(store: Store): Promise<void> {
  await coll(store).db.dropDatabase();
}

/**
 * Drops the jobs collection (indexes go with it: call ensureIndexes after).
 * Dropped, not deleteMany({}): FerretDB 1.24 deletes all matched ids in one
 * statement, past SQLite's 32,766 variables.
 */
export async function dropJobs(store: Store): Promise<void> {
  await coll(store).jobs.drop();
}
