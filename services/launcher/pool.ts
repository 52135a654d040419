/**
 * The launcher's compute capacity. Serial mode: each node holds jobs whose
 * shares (1 / node_packing_count each) sum to at most 1 and whose GPUs are
 * whole devices of its own, as Balsam 2's node manager counts a node's
 * occupancy and idle GPUs. MPI mode: each job takes `num_nodes` whole nodes
 * and its GPUs on each. Waiters are served largest first; a smaller one
 * that fits goes ahead when the largest cannot start yet (backfill).
 */
import { gpusPerNodeOf, type Job } from "../../libs/models/index.js";

export interface Grant {
  hosts: string[];
  /** The GPU ids granted on each host, in the order of `hosts`; empty lists for a job that asked for none. */
  gpus: string[][];
  release(): void;
}

/** What a job asks of the pool. */
export interface Demand {
  /** Serial: its share of one node (1 / node_packing_count); mpi: its node count. */
  size: number;
  /** Whole GPUs on each of its nodes. */
  gpus: number;
}

export interface PoolNode {
  host: string;
  gpuIds: readonly string[];
}

interface Waiter {
  demand: Demand;
  resolve: (g: Grant | null) => void;
}

const EPS = 1e-9;

/** A job's demand on a launcher of this mode. */
export function demandOf(job: Pick<Job, "nodePackingCount" | "numNodes" | "ranksPerNode"> & { gpusPerRank?: number }, mode: "serial" | "mpi"): Demand {
  return { size: mode === "serial" ? 1 / Math.max(1, job.nodePackingCount) : job.numNodes, gpus: gpusPerNodeOf(job) };
}

export function sameDemand(a: Demand, b: Demand): boolean {
  return Math.abs(a.size - b.size) < EPS && a.gpus === b.gpus;
}

export class NodePool {
  readonly hosts: readonly string[];
  private readonly load: number[];
  /** Each node's idle GPUs, kept in the node's own order so a job gets the lowest free ids. */
  private readonly idleGpus: string[][];
  private readonly gpuOrder: Array<Map<string, number>>;
  private waiters: Waiter[] = [];
  private releaseWaiters: Array<() => void> = [];
  private held = 0;
  private closed = false;
  /** Node-ms free while no job waited, from the first acquire on (emptyShare). */
  private emptyNodeMs = 0;
  private emptyAtLastRelease = 0;
  private firstAt: number | undefined;
  private lastAt = 0;
  private lastReleaseAt: number | undefined;

  constructor(
    nodes: readonly PoolNode[],
    readonly mode: "serial" | "mpi",
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.hosts = nodes.map((n) => n.host);
    this.load = nodes.map(() => 0);
    this.idleGpus = nodes.map((n) => [...n.gpuIds]);
    this.gpuOrder = nodes.map((n) => new Map(n.gpuIds.map((id, i) => [id, i])));
  }

  get size(): number {
    return this.hosts.length;
  }

  /** The most GPUs any one node of this pool has. */
  get maxGpus(): number {
    return Math.max(0, ...this.gpuOrder.map((m) => m.size));
  }

  /** Why a demand can never be served by this pool, or undefined when it can. */
  whyNever(d: Demand): string | undefined {
    const enough = this.gpuOrder.filter((m) => m.size >= d.gpus).length;
    if (this.mode === "mpi" && d.size > this.hosts.length) return `${d.size} nodes, this launcher has ${this.hosts.length}`;
    if (this.mode === "serial" ? enough === 0 : enough < d.size) {
      const has = this.maxGpus === 0 ? "none" : `${this.maxGpus}`;
      return `${d.gpus} GPU(s) per node, this launcher's nodes have ${has}`;
    }
    return undefined;
  }

  /** Whether any grant is held (asked on each state write: a count, not a pass over the nodes). */
  busy(): boolean {
    return this.held > 0;
  }

  waiting(): number {
    return this.waiters.length;
  }

  /**
   * Resolves with hosts (and their GPUs) when capacity is free, or null
   * when the pool closes first (the caller then gives its queue entry back).
   */
  acquire(demand: Demand): Promise<Grant | null> {
    return this.acquireWithin(demand, Infinity) as Promise<Grant | null>;
  }

  /** As acquire, but undefined once `ms` have passed without capacity (the waiter is gone then: nothing is granted later). */
  acquireWithin(demand: Demand, ms: number): Promise<Grant | null | undefined> {
    if (this.closed) return Promise.resolve(null);
    this.account();
    this.firstAt ??= this.lastAt;
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const w: Waiter = {
        demand,
        resolve: (g) => {
          clearTimeout(timer);
          resolve(g);
        },
      };
      this.waiters.push(w);
      this.waiters.sort((a, b) => b.demand.size - a.demand.size || b.demand.gpus - a.demand.gpus);
      this.dispatch();
      if (Number.isFinite(ms) && this.waiters.includes(w)) {
        timer = setTimeout(() => {
          const k = this.waiters.indexOf(w);
          if (k < 0) return;
          this.account();
          this.waiters.splice(k, 1);
          resolve(undefined);
        }, ms);
        // A waiter's time-out must not keep a stopping launcher alive: close() answers it.
        timer.unref();
      }
    });
  }

  /** Resolves at the next release of a grant (or when the pool closes). */
  released(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((r) => this.releaseWaiters.push(r));
  }

  private tryTake({ size, gpus }: Demand): Grant | null {
    let idx: number[] = [];
    if (this.mode === "serial") {
      // Fill the busiest node that still has room: keeps whole nodes free.
      let best = -1;
      for (let i = 0; i < this.load.length; i++) {
        const l = this.load[i]!;
        if (l + size <= 1 + EPS && this.idleGpus[i]!.length >= gpus && (best < 0 || l > this.load[best]!)) best = i;
      }
      if (best >= 0) idx = [best];
    } else {
      for (let i = 0; i < this.load.length && idx.length < size; i++) if (this.load[i]! <= EPS && this.idleGpus[i]!.length >= gpus) idx.push(i);
      if (idx.length < size) idx = [];
    }
    if (idx.length === 0) return null;
    const share = this.mode === "serial" ? size : 1;
    const taken = idx.map((i) => {
      this.load[i]! += share;
      return this.idleGpus[i]!.splice(0, gpus);
    });
    this.held++;
    let released = false;
    return {
      hosts: idx.map((i) => this.hosts[i]!),
      gpus: taken.map((ids) => [...ids]),
      release: () => {
        if (released) return;
        released = true;
        this.held--;
        this.account();
        this.lastReleaseAt = this.lastAt;
        this.emptyAtLastRelease = this.emptyNodeMs;
        idx.forEach((i, k) => {
          this.load[i] = Math.max(0, this.load[i]! - share);
          const order = this.gpuOrder[i]!;
          this.idleGpus[i]!.push(...taken[k]!);
          this.idleGpus[i]!.sort((a, b) => order.get(a)! - order.get(b)!);
        });
        this.dispatch();
        for (const r of this.releaseWaiters.splice(0)) r();
      },
    };
  }

  /**
   * The share of the pool's capacity that stood empty while no job waited
   * for it, from the first job asked for to the last one done: the
   * launcher's own gaps (entries not fetched, jobs not read in time), not
   * the jobs'. Undefined before any job is done.
   */
  emptyShare(): number | undefined {
    if (this.firstAt === undefined || this.lastReleaseAt === undefined || this.lastReleaseAt <= this.firstAt) return undefined;
    return this.emptyAtLastRelease / ((this.lastReleaseAt - this.firstAt) * this.load.length);
  }

  /** Adds the time since the last event to the empty capacity, when nothing waited meanwhile. */
  private account(): void {
    const t = this.clock();
    if (this.firstAt !== undefined && this.waiters.length === 0) {
      let free = 0;
      for (const l of this.load) free += Math.max(0, 1 - l);
      this.emptyNodeMs += free * (t - this.lastAt);
    }
    this.lastAt = t;
  }

  private dispatch(): void {
    for (let k = 0; k < this.waiters.length; ) {
      const w = this.waiters[k]!;
      const g = this.tryTake(w.demand);
      if (g) {
        this.waiters.splice(k, 1);
        w.resolve(g);
      } else {
        k++;
      }
    }
  }

  /** Wakes every waiter with null; later acquires resolve null at once. */
  close(): void {
    this.closed = true;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.resolve(null);
    for (const r of this.releaseWaiters.splice(0)) r();
  }
}

