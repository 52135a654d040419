import { recoverLapsedLeases, type Balsam } from "../../libs/client/index.js";
import type { Fence } from "./fence.js";

/**
 * The little a lease keeper needs of its launcher (BullMQ's
 * LockManagerWorkerContext is the model): which leases to renew, how to
 * stamp the launcher's own heartbeat, and how to stop and resume taking work.
 */
export interface LeaseContext {
  /** The jobs holding a lease of this launcher (not those running ahead of their claim). */
  claimedJobIds(): string[];
  /** Stamps the launcher's own document. */
  beat(): Promise<unknown>;
  /** Stops (true) or resumes (false) fetching queue entries. */
  pauseFetching(pause: boolean): void;
  /** Whether the launcher still takes work (not stopping). */
  active(): boolean;
  log(line: string): void;
}

/** Renews this launcher's leases, fences it when it cannot, and recovers other launchers' lapsed ones. */
export class LeaseKeeper {
  /** Fetching paused because the launcher fenced itself. */
  private paused = false;

  constructor(
    private readonly ctx: LeaseContext,
    private readonly fence: Fence,
    private readonly client: Balsam,
    private readonly maxLeaseLapses: number,
  ) {}

  /**
   * Only the jobs this launcher is working on: a claim whose answer was lost
   * (a retried write after a dropped connection) must be left to lapse, not
   * kept alive by an owner-wide renewal. By _id, each update is an index
   * lookup on FerretDB too.
   */
  async heartbeat(): Promise<void> {
    await this.fence.heartbeat(this.ctx.claimedJobIds(), () => this.ctx.beat());
    if (this.fence.canTake()) this.pause(false);
  }

  /** Whether new work may be taken; fenced, fetching stops until a heartbeat renews again. */
  canTake(): boolean {
    if (this.fence.canTake()) return true;
    this.pause(true);
    return false;
  }

  /**
   * A fenced launcher's workers fetch nothing until a heartbeat renews again:
   * entries stay in the queue for other launchers instead of bouncing through
   * this one (measured before: ~400 give-backs a second a launcher, a load
   * that kept its own heartbeats late, so it stayed fenced).
   */
  private pause(pause: boolean): void {
    if (pause === this.paused || !this.ctx.active()) return;
    this.paused = pause;
    this.ctx.log(pause ? "fenced: leases could not be renewed in time; taking no new work until they are" : "leases renewed again: taking work");
    this.ctx.pauseFetching(pause);
  }

  /** Other launchers' lapsed leases: their jobs go back to the queue (or fail, past maxLeaseLapses). */
  async recover(): Promise<void> {
    const ids = await recoverLapsedLeases(this.client.store, this.client.queues, { maxLeaseLapses: this.maxLeaseLapses });
    if (ids.length) this.ctx.log(`recovered ${ids.length} job(s) whose launcher's lease lapsed`);
  }
}
