import { randomUUID } from "node:crypto";
import { checkAppForLaunch, type App, type AppSpec } from "../models/index.js";
import { ConflictError, NotFoundError, UsageError } from "../errors/index.js";
import type { Store } from "./connection.js";
import { coll } from "./collections.js";

export async function createApp(store: Store, spec: AppSpec): Promise<App> {
  if (!spec.name?.trim()) throw new UsageError("an app needs a name");
  if (!spec.executable?.trim()) throw new UsageError("an app needs an executable");
  checkAppForLaunch(spec);
  const app: App = {
    _id: randomUUID(),
    name: spec.name,
    executable: spec.executable,
    preprocess: spec.preprocess ?? "",
    postprocess: spec.postprocess ?? "",
    envscript: spec.envscript ?? "",
    description: spec.description ?? "",
    createdAt: new Date(),
  };
  // Checked first for a clear message; the unique index still guards a race.
  if (await coll(store).apps.findOne({ name: app.name }, { projection: { _id: 1 } })) {
    throw new ConflictError(`an app named '${app.name}' already exists`, { hint: "pick another name or `balsam modify ... --type apps`" });
  }
  try {
    await coll(store).apps.insertOne(app);
  } catch (err) {
    if ((err as { code?: number }).code === 11000) throw new ConflictError(`an app named '${app.name}' already exists`);
    throw err;
  }
  return app;
}

export async function getApp(store: Store, name: string): Promise<App> {
  const app = await coll(store).apps.findOne({ name });
  if (!app) throw new NotFoundError(`no app named '${name}'`, { hint: "`balsam ls apps` lists them; `balsam app --name ... --executable ...` adds one" });
  return app;
}

export async function findApp(store: Store, name: string): Promise<App | null> {
  return coll(store).apps.findOne({ name });
}

export async function listApps(store: Store, namePart?: string): Promise<App[]> {
  // Case-insensitive, as 0.x's name__icontains.
  const filter = namePart ? { name: { $regex: escapeRegex(namePart), $options: "i" } } : {};
  return coll(store).apps.find(filter).sort({ name: 1 }).toArray();
}

export async function updateApp(store: Store, name: string, set: Partial<App>): Promise<void> {
  checkAppForLaunch(set);
  const res = await coll(store).apps.updateOne({ name }, { $set: set });
  if (res.matchedCount === 0) throw new NotFoundError(`no app named '${name}'`);
}

export async function deleteApps(store: Store, filter: { name?: string; id?: string }): Promise<string[]> {
  const q: Record<string, unknown> = {};
  if (filter.name) q.name = { $regex: escapeRegex(filter.name), $options: "i" };
  if (filter.id) q._id = { $regex: escapeRegex(filter.id), $options: "i" };
  if (Object.keys(q).length === 0) return [];
  const apps = await coll(store).apps.find(q, { projection: { name: 1 } }).toArray();
  if (apps.length) await coll(store).apps.deleteMany({ _id: { $in: apps.map((a) => a._id) } });
  return apps.map((a) => a.name);
}

/** Deletes apps by exact name; the CLI lists what it will delete first, then deletes exactly that. */
export async function deleteAppsByName(store: Store, names: readonly string[]): Promise<number> {
  if (names.length === 0) return 0;
  const res = await coll(store).apps.deleteMany({ name: { $in: [...names] } });
  return res.deletedCount;
}

/** A literal substring as a regex: `--name '.*'` must match only names containing `.*`. */
export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Which of `names` are apps. Filter `{name: {$in}}`; index `name_unique`. Guard: none beyond `$in` on a unique index. */
export async function appNamesAmong(store: Store, names: readonly string[]): Promise<Set<string>> {
  const found = await coll(store).apps.find({ name: { $in: [...names] } }, { projection: { name: 1 } }).toArray();
  return new Set(found.map((a) => a.name));
}
