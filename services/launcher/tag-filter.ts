import { hasTags, tagsQuery, type Job, type Tags } from "../../libs/models/index.js";

/**
 * `balsam launcher --tag K=V`: the launcher runs only jobs carrying every
 * given tag (Balsam 2's `filter_tags`), while its queues stay per workflow
 * and are shared with other launchers.
 *
 * Why not a queue per tag set: tags are free-form labels (a search tags
 * each evaluation with its generation, sometimes its own id), so queues per
 * tag set could number as many as jobs, and every untagged launcher would
 * have to discover and poll them all. Instead the entry's launch snapshot
 * carries the job's tags (libs/models/snapshot.ts), so a tagged launcher
 * decides from the entry alone, reading nothing, and an entry that is not
 * its own goes back to the queue (delayed by `delayMs`, to the back of the
 * line): it is never lost, and an untagged launcher or one with matching
 * tags takes it on a later pull.
 *
 * The price is the bounce: a tagged launcher sharing a queue with many
 * entries that are not its own keeps pulling and returning them. Each miss
 * in a row holds the slot a little longer before the entry goes back (10 ms
 * more per miss, at most 1 s), so a launcher with nothing of its own left
 * costs Redis at most `concurrency` bounces a second, while its first misses
 * (its own jobs just behind others') cost nearly nothing; behind more than
 * ~100 of others' entries in a row it reaches its own at about one entry a
 * second per slot. A campaign that runs tag groups on separate launchers at
 * scale should give each group its own workflow too: workflows are the
 * queues, tags the selection.
 */
export class TagFilter {
  /** How long an entry that is not this launcher's stays away from the wait list: long enough not to meet it again at once. */
  readonly delayMs = 1000;
  private readonly want: Tags | undefined;
  private streak = 0;

  constructor(tags: Tags | undefined) {
    this.want = tags && Object.keys(tags).length > 0 ? tags : undefined;
  }

  /** Whether the launcher filters at all. */
  get active(): boolean {
    return this.want !== undefined;
  }

  /** Whether this launcher runs the job; a hit resets the miss streak. */
  accepts(job: Pick<Job, "tags">): boolean {
    if (!this.want) return true;
    const ok = hasTags(job.tags, this.want);
    if (ok) this.streak = 0;
    return ok;
  }

  /** How long the slot that missed waits before it gives the entry back. */
  missPauseMs(): number {
    this.streak++;
    return Math.min(1000, 10 * (this.streak - 1));
  }

  /** The MongoDB condition for "jobs this launcher could run" (idle checks); served by the tag indexes. */
  query(): Record<string, unknown> {
    return tagsQuery(this.want);
  }
}
