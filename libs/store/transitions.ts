import type { Filter, UpdateFilter } from "mongodb";
import { canTransitionPath, type Job, type JobState, type StateHistoryEntry } from "../models/index.js";
import { InvalidTransitionError } from "../errors/index.js";
import { allowedTransitions } from "../models/index.js";
import type { Store } from "./connection.js";
import { chunked, MAX_BULK_OPS } from "./bulk.js";
import { randomUUID } from "node:crypto";
import { coll } from "./collections.js";

/**
 * One compare-and-set state change: the job must be in `from` (and, when
 * given, leased by `owner`); it moves through `path` — several states at once
 * when steps are fast-forwarded — with every step appended to its history in
 * the same write.
 */
export interface Transition {
  id: string;
  from: JobState | readonly JobState[];
  /** Lease owner the job must have; `null` means the job must have no lease. */
  owner?: string | null;
  path: ReadonlyArray<{ state: JobState; message?: string }>;
  /** Other fields written in the same update. */
  set?: Partial<Job>;
  /** Fields removed in the same update. */
  unset?: Array<keyof Job>;
  inc?: Partial<Record<"attempts", number>>;
  /**
   * The `updatedAt` the job must still have: the version its queue entry
   * carried (DESIGN §7), so a job changed since then is not written over.
   */
  version?: Date;
  /**
   * The job's lease must have ended before this time (the database server's):
   * recovery's condition, so a launcher that renewed meanwhile keeps its job.
   */
  lapsedBefore?: Date;
  /** The time to record (history and `updatedAt`), so the caller knows the job's new version. Default: the write's. */
  at?: Date;
}

function check(t: Transition): void {
  const froms = Array.isArray(t.from) ? t.from : [t.from as JobState];
  const states = t.path.map((p) => p.state);
  for (const f of froms) {
    if (!canTransitionPath(f, states)) {
      const first = states[0] ?? f;
      throw new InvalidTransitionError(f, states.join(" → "), f === first ? [] : allowedTransitions(f));
    }
  }
}

export function transitionOp(t: Transition, writeTime = new Date()): { filter: Filter<Job>; update: UpdateFilter<Job> } {
  check(t);
  const now = t.at ?? writeTime;
  const froms = Array.isArray(t.from) ? t.from : [t.from as JobState];
  const filter: Record<string, unknown> = { _id: t.id, state: froms.length === 1 ? froms[0] : { $in: froms } };
  if (t.owner !== undefined) filter["lock.owner"] = t.owner;
  if (t.version !== undefined) filter.updatedAt = t.version;
  if (t.lapsedBefore !== undefined) filter["lock.until"] = { $lt: t.lapsedBefore };
  const last = t.path[t.path.length - 1];
  if (!last) throw new Error("a transition needs at least one state");
  const entries: StateHistoryEntry[] = t.path.map((p) => ({ at: now, state: p.state, message: p.message ?? "" }));
  const update: Record<string, unknown> = {
    $set: { ...(t.set ?? {}), state: last.state, updatedAt: now },
    $push: { stateHistory: { $each: entries } },
  };
  if (t.unset?.length) update.$unset = Object.fromEntries(t.unset.map((k) => [k, ""]));
  if (t.inc) update.$inc = t.inc;
  return { filter: filter as Filter<Job>, update: update as UpdateFilter<Job> };
}

/** Applies one transition; false when the job was not in the expected state/owner (a lost race). */
export async function transitionJob(store: Store, t: Transition): Promise<boolean> {
  const { filter, update } = transitionOp(t);
  const res = await coll(store).jobs.updateOne(filter, update);
  return res.matchedCount === 1;
}

/**
 * Applies many transitions in unordered bulks of at most MAX_BULK_OPS
 * statements, all recorded at `now` (so the caller knows the jobs' new
 * `updatedAt`). Returns the ids whose condition did not match (lost races).
 *
 * A bulk's answer gives counts, not which statement matched, so when a
 * chunk's matched count falls short its ids are read back — by `_id $in`,
 * an index lookup on MongoDB and on our FerretDB, never a scan — and a job
 * counts as written only when it carries this call's write token: the time
 * alone could be shared with a rival write in the same millisecond.
 *
 * `token` names the write: a caller that retries after an error passes the
 * same token and `now` again, so a statement the server applied before its
 * answer was lost reads back as written, not as a lost race.
 *
 * Sent as the server's `update` command, not the driver's bulkWrite: the
 * same statements and answer, without sizing and wrapping each statement
 * first (measured: 45–61 → 31–34 µs of the caller's CPU a statement in
 * bulks of 32; issue 24's note of 2026-12-06). A bulk this size is far below
 * the server's limits (bulk.ts); the driver's retry of a retryable write is
 * the token's business instead.
 */
export async function recordTransitions(store: Store, ts: Transition[], now = new Date(), token: string = randomUUID()): Promise<string[]> {
  const lost: string[] = [];
  const chunks = chunked(ts, MAX_BULK_OPS);
  for (let c = 0; c < chunks.length; c++) {
    const chunk = chunks[c]!;
    const bulkId = `${token}.${c}`;
    const updates = chunk.map((t, i) => {
      const { filter, update } = transitionOp(t, now);
      (update.$set as Record<string, unknown>).writeToken = `${bulkId}:${i}`;
      return { q: filter, u: update };
    });
    const matched = await updateCommand(store, updates);
    if (matched === chunk.length) continue;
    const docs = await coll(store).jobs
      .find({ _id: { $in: [...new Set(chunk.map((t) => t.id))] } }, { projection: { writeToken: 1 } })
      .toArray();
    // Statement index of this bulk that last wrote each job, if any.
    const lastWrite = new Map<string, number>();
    for (const d of docs) {
      const tok = d.writeToken ?? "";
      const colon = tok.lastIndexOf(":");
      if (colon > 0 && tok.slice(0, colon) === bulkId) lastWrite.set(d._id, Number(tok.slice(colon + 1)));
    }
    // A later statement of the same job (a chained transition) matching
    // means the earlier one had been applied too.
    chunk.forEach((t, i) => {
      if ((lastWrite.get(t.id) ?? -1) < i) lost.push(t.id);
    });
  }
  return lost;
}

/** The server's answer to an `update` command, as far as it is read here. */
interface UpdateReply {
  n?: number;
  writeErrors?: Array<{ index: number; code: number; errmsg?: string }>;
  writeConcernError?: { code: number; errmsg?: string };
  errorLabels?: string[];
}

/**
 * A statement or a write concern the server refused in an `update` command,
 * with the server's code and labels (writer.ts's isTransient reads them).
 */
export class UpdateRefusedError extends Error {
  override readonly name = "UpdateRefusedError";
  constructor(
    message: string,
    readonly code: number,
    readonly errorLabels: readonly string[],
  ) {
    super(message);
  }
}

/**
 * One unordered `update` command; how many statements matched. A refused
 * statement or write concern throws after the rest of the bulk was applied,
 * as bulkWrite's error did.
 */
async function updateCommand(store: Store, updates: Array<{ q: Filter<Job>; u: UpdateFilter<Job> }>): Promise<number> {
  const res = (await coll(store).db.command({ update: "jobs", updates, ordered: false })) as UpdateReply;
  const bad = res.writeErrors?.[0] ?? res.writeConcernError;
  if (bad) throw new UpdateRefusedError(`the database refused a job update: ${bad.errmsg ?? "no message"} (code ${bad.code})`, bad.code, res.errorLabels ?? []);
  return res.n ?? 0;
}
