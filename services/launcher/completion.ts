import type { Job, JobState } from "../../libs/models/index.js";
import { coerceError } from "../../libs/errors/index.js";
import { announceFinished, queueItem, releaseChildren, type Balsam, type FinishedJob } from "../../libs/client/index.js";

export interface LauncherSummary {
  finished: number;
  failed: number;
  restarted: number;
  killed: number;
  reason: string;
}

/**
 * What follows a job's last write on this launcher, in one place: the
 * summary's count, a restart's queue entry, the finished announcement, and
 * the release of its children. Announcements and releases are batched: the
 * jobs of one bulk write cost one Redis message and one dependents query,
 * not one each.
 */
export class Completion {
  readonly summary: LauncherSummary = { finished: 0, failed: 0, restarted: 0, killed: 0, reason: "" };
  private announcements: FinishedJob[] = [];
  private releases: string[] = [];
  private announceTimer: NodeJS.Timeout | undefined;
  private releaseTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: Balsam,
    private readonly log: (line: string) => void,
  ) {}

  /** A job's last write on this launcher succeeded, leaving it `last`. */
  async ended(job: Pick<Job, "_id" | "workflow" | "name" | "numNodes" | "attempts" | "hasChildren">, last: JobState, result?: unknown): Promise<void> {
    if (last === "RESTART_READY") {
      this.summary.restarted++;
      // Only the pointer: this launcher's copy of the job lacks the history a restart's path depends on.
      const { _id, workflow, numNodes } = job;
      await this.client.queues.enqueue([queueItem({ _id, workflow, numNodes, attempts: job.attempts + 1 })]);
      return;
    }
    if (last === "JOB_FINISHED") this.summary.finished++;
    else if (last === "FAILED") this.summary.failed++;
    else if (last === "USER_KILLED") this.summary.killed++;
    this.announceFinished({ id: job._id, workflow: job.workflow, name: job.name, state: last, result });
    // Children added while this job ran are released by the idle check or `balsam service`.
    if (job.hasChildren) this.releaseChildren(job._id);
  }

  /** Tells the finished channel; a search hears it within milliseconds. */
  private announceFinished(f: FinishedJob): void {
    this.announcements.push(f);
    this.announceTimer ??= setTimeout(() => void this.flushAnnouncements(), 2);
  }

  private releaseChildren(id: string): void {
    this.releases.push(id);
    this.releaseTimer ??= setTimeout(() => {
      this.flushReleases().catch((err: unknown) => this.log(`releasing children failed: ${coerceError(err).message}`));
    }, 10);
  }

  /** Sends what is buffered (at shutdown). */
  async flush(): Promise<void> {
    await this.flushReleases();
    await this.flushAnnouncements();
  }

  private async flushAnnouncements(): Promise<void> {
    if (this.announceTimer) clearTimeout(this.announceTimer);
    this.announceTimer = undefined;
    const list = this.announcements;
    this.announcements = [];
    await announceFinished(this.client.queues, list);
  }

  private async flushReleases(): Promise<void> {
    if (this.releaseTimer) clearTimeout(this.releaseTimer);
    this.releaseTimer = undefined;
    const ids = this.releases;
    this.releases = [];
    await releaseChildren(this.client, ids);
  }
}
