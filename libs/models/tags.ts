import { UsageError } from "../errors/index.js";

/**
 * Tags: string → string labels on a job (Balsam 2's `tags`), for grouping
 * jobs across and within workflows ("generation 3 of run B") without
 * encoding it in names. Pure: parsing, validation, the query, matching.
 *
 * A job stores them as the map `tags`, and a tag query is `{"tags.K": V}`,
 * served by one index per key (`{"tags.K": 1}`, made as keys appear:
 * libs/store/tag-indexes.ts) on MongoDB and on the project's FerretDB
 * (patch 0016). Keys are therefore field-name safe: letters, digits and
 * '_', not starting with a digit (no '.' or '$', which MongoDB paths give
 * meaning, nor anything FerretDB's SQLite JSON paths would need quoted).
 */

export type Tags = Record<string, string>;

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A key this long is a mistake; 64 is also FerretDB's bound on a pushed-down field name. */
export const MAX_TAG_KEY_LENGTH = 64;
/** A value longer than this is a mistake (a pasted file), not a label. */
export const MAX_TAG_VALUE_LENGTH = 256;
/** Labels, not data: more than this many on one job is refused. */
export const MAX_TAGS = 32;

/** A malformed tag: a usage error (the CLI exits 2, the API answers 400). */
export class TagSyntaxError extends UsageError {}

/** One `KEY=VALUE` word as given to `--tag`; the value is everything after the first '='. */
export function parseTag(word: string): [string, string] {
  const eq = word.indexOf("=");
  if (eq <= 0) throw new TagSyntaxError(`--tag takes KEY=VALUE, not '${word}'`);
  const key = word.slice(0, eq);
  const value = word.slice(eq + 1);
  checkTag(key, value);
  return [key, value];
}

export function checkTag(key: string, value: unknown): void {
  if (!KEY.test(key) || key.length > MAX_TAG_KEY_LENGTH) {
    throw new TagSyntaxError(`tag key '${key}' must be letters, digits and '_', not starting with a digit (at most ${MAX_TAG_KEY_LENGTH})`);
  }
  if (typeof value !== "string") throw new TagSyntaxError(`tag ${key} must have a string value`);
  if (value.length > MAX_TAG_VALUE_LENGTH || /[\n\r\0]/.test(value)) throw new TagSyntaxError(`tag ${key}'s value must be one line of at most ${MAX_TAG_VALUE_LENGTH} characters`);
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

/** A spec's tags (absent is fine). */
export function checkSpecTags(tags: unknown): void {
  if (tags !== undefined) checkTags(tags);
}

/** The query for jobs carrying all of `tags`: one `tags.K` equality per tag, each served by its key's index. */
export function tagsQuery(tags: Tags | undefined): Record<string, string> {
  const q: Record<string, string> = {};
  for (const [k, v] of Object.entries(tags ?? {})) q[`tags.${k}`] = v;
  return q;
}

/** Whether a job's tags include every one of `want` (Balsam 2's `filter_tags`: all must match). */
export function hasTags(tags: Tags | undefined, want: Tags | undefined): boolean {
  if (!want) return true;
  for (const [k, v] of Object.entries(want)) if (tags?.[k] !== v) return false;
  return true;
}

/** `k=v,k2=v2`, sorted by key, as `ls` shows them. */
export function formatTags(tags: Tags | undefined): string {
  return Object.entries(tags ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}
