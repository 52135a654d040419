import type { Store } from "./connection.js";
import { coll } from "./collections.js";
import { checkTags } from "../models/index.js";

/**
 * One index per tag key, `{"tags.K": 1}` named `tag_K`, made the first time
 * a job with that key is written, so `{"tags.K": V}` (a tag query) is an
 * index search as `{workflow}` is: on MongoDB directly; on the project's
 * FerretDB through patch 0016, which also needs the `{tags: 1}` index
 * (Store.ensureIndexes) to let arrays through without reading every row.
 *
 * Keys are few next to jobs (a campaign's labels: run, gen, kind…), and the
 * index of a new key is built once, on the jobs there are then (on FerretDB
 * a few seconds per million jobs). Past MAX_TAG_INDEXES keys no more are
 * made (MongoDB allows 64 indexes a collection): those keys' queries stay
 * right, read more. The keys seen are cached per Store; a concurrent maker
 * of the same index is tolerated (FerretDB 1.24 drops the connection when
 * createIndexes names an existing index: the list is read again instead).
 */
export const MAX_TAG_INDEXES = 48;

const known = new WeakMap<Store, Promise<Set<string>>>();

async function tagIndexes(store: Store): Promise<Set<string>> {
  let p = known.get(store);
  if (!p) {
    p = coll(store).jobs
      .listIndexes()
      .toArray()
      .then((ix) => new Set(ix.map((i) => String(i.name)).filter((n) => n.startsWith("tag_"))))
      .catch(() => new Set<string>());
    known.set(store, p);
  }
  return p;
}

/** Makes the indexes of the keys that have none yet; validates the tags first. */
export async function ensureTagIndexes(store: Store, tagMaps: Iterable<Record<string, string> | undefined>): Promise<void> {
  const keys = new Set<string>();
  for (const t of tagMaps) if (t) for (const k of Object.keys(checkTags(t))) keys.add(k);
  if (keys.size === 0) return;
  const have = await tagIndexes(store);
  for (const k of keys) {
    const name = `tag_${k}`;
    if (have.has(name) || have.size >= MAX_TAG_INDEXES) continue;
    try {
      await coll(store).jobs.createIndex({ [`tags.${k}`]: 1 }, { name });
    } catch (err) {
      const now = await coll(store).jobs
        .listIndexes()
        .toArray()
        .then((ix) => ix.map((i) => String(i.name)))
        .catch(() => [] as string[]);
      if (!now.includes(name)) throw err;
    }
    have.add(name);
  }
}
