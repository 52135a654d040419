import type { Collection, Db, MongoClient } from "mongodb";
import type { App, Job } from "../models/index.js";
import type { LauncherDoc, QueuedLaunchDoc } from "./docs.js";

/**
 * The store's driver objects, reachable only through this module, which
 * libs/store/index.ts does not re-export: every query outside libs/store is
 * a named operation (eslint's no-restricted-imports keeps it so; tests may
 * reach in to set up or inspect a database).
 */
export interface Collections {
  client: MongoClient;
  db: Db;
  jobs: Collection<Job>;
  apps: Collection<App>;
  launchers: Collection<LauncherDoc>;
  queuedLaunches: Collection<QueuedLaunchDoc>;
}

// Symbol.for: the CLI bundles (scripts/bundle-cli.mjs) may hold more than one copy of this module.
export const COLLECTIONS: unique symbol = Symbol.for("balsam.store.collections");

/** The collections of a store. */
export function coll(store: { readonly [COLLECTIONS]: Collections }): Collections {
  return store[COLLECTIONS];
}
