import { UsageError } from "../errors/index.js";
/**
 * Tags: string → string labels on a job (Balsam 2's `tags`), for grouping
 * jobs across and within workflows ("generation 3 of run B") without
 * encoding it in names. Pure: parsing, the stored index form, matching.
 *
 * A job stores its tags twice: `tags` (the map users read and write) and
 * `tagList` (`["k=v", …]`, kept in step by every writer of `tags`), because
 * an index over a map's arbitrary keys needs a wildcard index, which
 * FerretDB 1.x does not have, while an array of strings takes an ordinary
 * (multikey on MongoDB) index: `{tagList: "k=v"}` is then one index lookup.
 */

export type Tags = Record<string, string>;

/** Keys as Balsam 2 and shells like them: no '=' (the separator), no spaces, no '$' or '.' (MongoDB field paths). */
const KEY = /^[A-Za-z0-9_-][A-Za-z0-9_:/-]*$/;
/** A key or value longer than this is a mistake (a pasted file), not a label. */
export const MAX_TAG_LENGTH = 256;
/** Labels, not data: more than this many on one job is refused. */
export const MAX_TAGS = 32;

/** A malformed tag: a usage error (the CLI exits 2, the API answers 400). */
export class TagSyntaxError extends UsageError {}

/** One `KEY=VALUE` word as given to `--tag`. */
export function parseTag(word: string): [string, string] {
  const eq = word.indexOf("=");
  if (eq <= 0) throw new TagSyntaxError(`--tag takes KEY=VALUE, not '${word}'`);
  const key = word.slice(0, eq);
  const value = word.slice(eq + 1);
  checkTag(key, value);
  return [key, value];
}

export function checkTag(key: string, value: unknown): void {
  if (!KEY.test(key) || key.length > MAX_TAG_LENGTH) {
    throw new TagSyntaxError(`tag key '${key}' must be letters, digits, '_', '-', ':' or '/' (at most ${MAX_TAG_LENGTH}), not starting with ':' or '/'`);
  }
  if (typeof value !== "string") throw new TagSyntaxError(`tag ${key} must have a string value`);
  if (value.length > MAX_TAG_LENGTH || /[\n\r\0]/.test(value)) throw new TagSyntaxError(`tag ${key}'s value must be one line of at most ${MAX_TAG_LENGTH} characters`);
}

/** Several `--tag` words into one map; a key given twice with different values is refused. */
export function parseTags(words: readonly string[] | undefined): Tags | undefined {
  if (!words || words.length === 0) return undefined;
  const tags: Tags = {};
  for (const w of words) {
    const [k, v] = parseTag(w);
    if (k in tags && tags[k] !== v) throw new TagSyntaxError(`--tag ${k} given twice (${tags[k]} and ${v})`);
    tags[k] = v;
  }
  return checkTags(tags);
}

/** Validates a whole map (from an API body or a client call). */
export function checkTags(tags: unknown): Tags {
  if (typeof tags !== "object" || tags === null || Array.isArray(tags)) throw new TagSyntaxError("tags must be an object of strings");
  const entries = Object.entries(tags as Record<string, unknown>);
  if (entries.length > MAX_TAGS) throw new TagSyntaxError(`at most ${MAX_TAGS} tags per job, not ${entries.length}`);
  for (const [k, v] of entries) checkTag(k, v);
  return tags as Tags;
}

/** The stored index form, sorted so equal maps give equal lists. */
export function tagList(tags: Tags | undefined): string[] {
  return Object.entries(tags ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .sort();
}

/** Whether a job's tags include every one of `want` (Balsam 2's `filter_tags`: all must match). */
export function hasTags(tags: Tags | undefined, want: Tags | undefined): boolean {
  if (!want) return true;
  for (const [k, v] of Object.entries(want)) if (tags?.[k] !== v) return false;
  return true;
}

/** `k=v,k2=v2`, as `ls` shows them. */
export function formatTags(tags: Tags | undefined): string {
  return tagList(tags).join(",");
}

/**
 * A `$set` of job fields with `tagList` kept in step when it sets `tags`
 * (every writer of `tags` goes through this). `tags` is checked first.
 */
export function withTagList<T extends object>(set: T): T & { tagList?: string[] } {
  const tags = (set as { tags?: unknown }).tags;
  if (tags === undefined) return set;
  return { ...set, tagList: tagList(checkTags(tags)) };
}

/** A spec's tags (absent is fine). */
export function checkSpecTags(tags: unknown): void {
  if (tags !== undefined) checkTags(tags);
}
