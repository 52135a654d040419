/**
 * Bounds on what one command carries. Every bulk path of the project goes
 * through these, so no server ever gets a command larger than it was shown
 * to answer (the conformance suite sends 5,000-statement bulks; FerretDB
 * 1.24.2 without our patch 0004 never answered 100) and no `$in` list is too
 * long for FerretDB's index pushdown (patch 0003 takes up to 10,000).
 */

/** Statements per bulkWrite. 1,000 conditional updates take ~1 s on FerretDB here. */
export const MAX_BULK_OPS = 1000;

/** Ids per `_id: {$in}` (and other `$in`) list. */
export const MAX_IN_IDS = 1000;

/** Splits `xs` into consecutive slices of at most `size`. */
export function chunked<T>(xs: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}
