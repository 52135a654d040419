import { leasedBy, renewLeases, serverTime, type Store } from "../../libs/store/index.js";
import type { QueueEntry } from "../../libs/queue/index.js";
import { monoMs } from "./spawner.js";
import type { FenceView } from "./runner.js";

/**
 * The fence (DESIGN §6.2): a job's processes never outlive the lease — or,
 * for a job running ahead of its claim, the queue entry's lock — that lets
 * this launcher run it, even when the launcher is frozen, cut off from the
 * servers, or its node's clock is wrong.
 *
 * - Each job has a deadline on this node's CLOCK_MONOTONIC. Only a
 *   *successful* renewal moves it: `leaseTtlMs - marginMs` after the renewal
 *   was sent (lease), `lockDurationMs - lockMarginMs` after a lock extension
 *   was sent (entry). The spawn helper (or the watchdog) kills the job's
 *   session there on its own timer: a frozen launcher does not stop it.
 * - Leases are judged on the database server's clock. Each heartbeat asks
 *   the server its time (`hello`); a lease written at local time m ends at
 *   L + 1 + (m − m0) + ttl, L being the server's answer to a request sent at
 *   m0: never earlier than the server's time at m plus the lease, however
 *   wrong the node's own wall clock is. Recovery compares with the server's
 *   time too (libs/client/recovery.ts). So the job is killed at least
 *   `marginMs` of server time before anyone may recover it, as long as the
 *   node's monotonic clock runs at the server clock's rate within
 *   marginMs / leaseTtlMs (25%; real clocks drift by 0.01%) and the server's
 *   clock does not step forward by more than `marginMs` while leases are held.
 * - A launcher that has not renewed for 3/4 of a lease takes no new work; its
 *   jobs end at their deadlines; when it can write again it writes only
 *   where it still holds the lease (every write is conditioned on it).
 */
/** The queue entry a job running ahead of its claim holds: its id, and when it was fetched (ms since the epoch). */
export type AheadEntry = Pick<QueueEntry, "entryId" | "fetchedAt">;

export interface FenceOptions {
  store: Store;
  owner: string;
  leaseTtlMs: number;
  /** The queue entries' lock length (a job running ahead of its claim holds only that). */
  lockDurationMs: number;
  /** SIGTERM this long before a deadline, SIGKILL at it (runner.ts). */
  termLeadMs: number;
  log: (line: string) => void;
  /** Moves the deadline of these jobs' live processes (ProcessSupervisor.moveDeadlines). */
  move: (ids: readonly string[], deadline: number) => void;
}

interface Held {
  deadline: number;
  /** The queue entry while the job runs ahead of its claim; undefined once leased. */
  entryId?: string;
}

export class Fence implements FenceView {
  /** Time between renewals: two of them fit before a deadline. */
  readonly renewEveryMs: number;
  readonly marginMs: number;
  private readonly lockMarginMs: number;
  private readonly held = new Map<string, Held>();
  /** Claims written (job id → local time the lease was computed at), until they are answered. */
  private readonly claims = new Map<string, number>();
  /** Sent time of each entry's last successful lock extension. */
  private readonly extended = new Map<string, number>();
  /** The server's clock: its answer L to a request sent at local m0. */
  private clock: { serverMs: number; m0: number } | undefined;
  private lastOk = monoMs();
  private fencedJobs = 0;

  get termLeadMs(): number {
    return this.o.termLeadMs;
  }

  constructor(private readonly o: FenceOptions) {
    this.marginMs = Math.floor(o.leaseTtlMs / 4);
    this.renewEveryMs = Math.max(200, Math.floor(o.leaseTtlMs / 4));
    this.lockMarginMs = Math.floor(o.lockDurationMs / 4);
  }

  /** Asks the server its time; the lease clock follows it from now on. */
  async sync(): Promise<void> {
    const m0 = monoMs();
    const at = await serverTime(this.o.store);
    // +1: the server's answer is truncated to the millisecond.
    this.clock = { serverMs: at.getTime() + 1, m0 };
  }

  /** The end of a lease computed now, on the server's clock; the claim's deadline follows from `claimed`. */
  leaseUntil(id: string): Date {
    const m = monoMs();
    // A claim refused leaves its record behind; one older than a lease is of no use.
    if (this.claims.size > 1000) for (const [c, at] of this.claims) if (at < m - this.o.leaseTtlMs) this.claims.delete(c);
    this.claims.set(id, m);
    return this.serverUntil(m);
  }

  private serverUntil(m: number): Date {
    if (!this.clock) throw new Error("the lease clock was not synchronised with the database server");
    return new Date(this.clock.serverMs + (m - this.clock.m0) + this.o.leaseTtlMs);
  }

  /** The job's claim was written: it runs under its lease now. */
  claimed(id: string): void {
    const m = this.claims.get(id);
    this.claims.delete(id);
    if (m === undefined) return;
    this.setDeadline([id], m + this.o.leaseTtlMs - this.marginMs, true);
  }

  /** A job starts ahead of its claim: it holds only its entry's lock, taken when the entry was fetched or last extended. */
  ahead(id: string, entry: AheadEntry): void {
    const fetched = entry.fetchedAt ? monoMs() - Math.max(0, Date.now() - entry.fetchedAt) : monoMs() - this.o.lockDurationMs;
    const since = Math.max(fetched, this.extended.get(entry.entryId) ?? -Infinity);
    this.held.set(id, { deadline: since + this.o.lockDurationMs - this.lockMarginMs, entryId: entry.entryId });
  }

  /** BullMQ extended these entries' locks, the request sent at `sentAt` (performance.now()). */
  locksExtended(entryIds: readonly string[], sentAt: number): void {
    const m = monoMs() - (performance.now() - sentAt);
    for (const e of entryIds) this.extended.set(e, m);
    // Entries are extended every quarter lock at most: older records are of entries long gone.
    for (const [e, at] of this.extended) if (at < m - 2 * this.o.lockDurationMs) this.extended.delete(e);
    const ids = [...this.held].filter(([, h]) => h.entryId !== undefined && entryIds.includes(h.entryId)).map(([id]) => id);
    this.setDeadline(ids, m + this.o.lockDurationMs - this.lockMarginMs, false);
  }

  /** Only forward, and never a passed one: a job past its deadline is being killed, whoever answers late. */
  private setDeadline(ids: readonly string[], deadline: number, leased: boolean): void {
    const moved: string[] = [];
    for (const id of ids) {
      const h = this.held.get(id);
      if (h && (this.lapsed(id) || h.deadline >= deadline)) continue;
      this.held.set(id, { deadline, ...(leased || !h ? {} : { entryId: h.entryId }) });
      moved.push(id);
    }
    if (moved.length) this.o.move(moved, deadline);
  }

  /** The job's run on this launcher is over. */
  forget(id: string): void {
    this.held.delete(id);
    this.claims.delete(id);
  }

  deadline(id: string): number | undefined {
    return this.held.get(id)?.deadline;
  }

  /** Past its deadline (its SIGTERM included): its processes are being killed, and it may be another launcher's now. */
  lapsed(id: string): boolean {
    const h = this.held.get(id);
    return h !== undefined && monoMs() >= h.deadline - this.o.termLeadMs;
  }

  /** Told by the supervisor when a job's processes were fenced; the message its RESTART_READY carries. */
  why(id: string): string {
    this.fencedJobs++;
    const h = this.held.get(id);
    // Since the renewal its deadline was last set from.
    const s = h ? Math.round((monoMs() - h.deadline + this.o.leaseTtlMs - this.marginMs) / 1000) : 0;
    const why = h?.entryId !== undefined ? `its queue entry's lock could not be extended for ${s} s` : `leases could not be renewed for ${s} s`;
    this.o.log(`job ${id}: fenced: ${why}: its processes were killed at their deadline; this launcher writes for it only while it still holds its lease`);
    return `fenced: ${why}`;
  }

  /**
   * Whether this launcher may take new work: its last renewal is younger
   * than a fence deadline. (A slow database alone does not stop it: a claim
   * that succeeds gives its job a deadline of its own.)
   */
  canTake(): boolean {
    return monoMs() - this.lastOk < this.o.leaseTtlMs - this.marginMs;
  }

  /**
   * One heartbeat: the server's time, then the leases of `ids` (jobs running
   * here, not past their deadlines) renewed on it, then `also` (the
   * launcher's own record). The deadlines of the jobs renewed move only if
   * all of it succeeded.
   */
  async heartbeat(ids: readonly string[], also: () => Promise<unknown>): Promise<void> {
    const sentAt = monoMs();
    await this.sync();
    const live = ids.filter((id) => !this.lapsed(id));
    const renewed = await renewLeases(this.o.store, this.o.owner, live, this.serverUntil(sentAt));
    await also();
    const gap = sentAt - this.lastOk;
    const fenced = gap > this.o.leaseTtlMs - this.marginMs;
    let ours = new Set(live);
    if (renewed < live.length || fenced) {
      // Rare: some were recovered by others meanwhile. Only those still ours move.
      ours = new Set(await leasedBy(this.o.store, this.o.owner, ids));
    }
    this.lastOk = Math.max(this.lastOk, sentAt);
    this.setDeadline(live.filter((id) => ours.has(id)), sentAt + this.o.leaseTtlMs - this.marginMs, true);
    if (fenced) {
      const lost = ids.filter((id) => !ours.has(id)).length;
      this.o.log(
        `renewed leases again after ${(gap / 1000).toFixed(1)} s without (frozen or cut off; fence deadline ${((this.o.leaseTtlMs - this.marginMs) / 1000).toFixed(1)} s): ` +
          `${this.fencedJobs} job(s) fenced at their deadlines; ${lost} no longer this launcher's (recovered by another launcher): writing nothing for them`,
      );
      this.fencedJobs = 0;
    }
  }
}
