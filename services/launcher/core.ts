import type { Job } from "../../libs/models/index.js";
import type { ResolvedOptions } from "./options.js";
import type { NodePool } from "./pool.js";
import type { TransitionWriter } from "./writer.js";
import type { Fence } from "./fence.js";
import type { ProcessSupervisor, RunHandle } from "./runner.js";
import type { Completion } from "./completion.js";
import type { CommandBuilder } from "./command.js";

/** A job this launcher is working on. */
export interface Running {
  job: Job;
  handle?: RunHandle;
  killed: boolean;
  /** The launcher is stopping: the run is cut short (0.x's RUN_TIMEOUT). */
  timedOut: boolean;
  /**
   * False while the job runs ahead of its claim (DESIGN §7): it has no lease
   * yet; its queue entry, still locked by this launcher's worker, keeps
   * every other launcher off it, and its writes are conditioned on
   * `version` (the `updatedAt` it was queued with) instead of the lease.
   */
  claimed: boolean;
  version?: Date;
  /**
   * The job's own script set its state, which dropped the lease (DESIGN
   * invariant 3), into a state this launcher carries on from: its writes are
   * conditioned on the job having no lease.
   */
  released?: boolean;
}

/** What became of a queue entry's job: handled (run, or nothing to do), or changed since it was queued and to be read again. */
export type Taken = "done" | "changed";

/**
 * What the launcher's rooms share: its resolved options, its capacity, its
 * writer and fence, and the jobs it is running. The Launcher (launcher.ts)
 * is the one implementation; each room takes only this.
 */
/** How many kills of jobs not running here a launcher remembers. */
export const KILLS_HEARD = 10_000;

export interface Core {
  readonly o: ResolvedOptions;
  readonly owner: string;
  readonly pool: NodePool;
  readonly writer: TransitionWriter;
  readonly fence: Fence;
  readonly completion: Completion;
  readonly commands: CommandBuilder;
  readonly running: Map<string, Running>;
  /**
   * Kills heard for jobs not running here (yet): one whose entry is in hand,
   * read before the kill, waiting for a slot, must not start (dispatch.ts).
   * The oldest are dropped past KILLS_HEARD.
   */
  readonly killsHeard: Set<string>;
  supervisor(): ProcessSupervisor;
  /** Taking work: not yet stopping. */
  active(): boolean;
  stopReason(): string;
  minutesLeft(): number;
  log(line: string): void;
  /** Something happened: the idle check waits a while longer. */
  touch(): void;
  /** Keeps a job's background stretch until shutdown has seen it end. */
  track(task: Promise<void>, id: string): void;
  /** Forgets a run, unless a newer attempt of the same job has taken its place. */
  untrack(r: Running): void;
}
