/**
 * The launcher's compute capacity. Serial mode: each node holds jobs whose
 * shares (1 / node_packing_count each) sum to at most 1. MPI mode: each job
 * takes `num_nodes` whole nodes. Waiters are served largest first; a smaller
 * one that fits goes ahead when the largest cannot start yet (backfill).
 */
export interface Grant {
  hosts: string[];
  release(): void;
}

interface Waiter {
  size: number; // serial: share of one node; mpi: node count
  resolve: (g: Grant | null) => void;
}

const EPS = 1e-9;

export class NodePool {
  private readonly load: number[];
  private waiters: Waiter[] = [];
  private closed = false;

  constructor(
    readonly hosts: readonly string[],
    readonly mode: "serial" | "mpi",
  ) {
    this.load = hosts.map(() => 0);
  }

  get size(): number {
    return this.hosts.length;
  }

  /** Whether a request of this size could ever be served by this pool. */
  fits(size: number): boolean {
    return this.mode === "serial" ? size <= 1 + EPS : size <= this.hosts.length;
  }

  busy(): boolean {
    return this.load.some((l) => l > EPS);
  }

  waiting(): number {
    return this.waiters.length;
  }

  /**
   * Resolves with hosts when capacity is free, or null when the pool closes
   * first (the caller then gives its queue entry back).
   */
  acquire(size: number): Promise<Grant | null> {
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.waiters.push({ size, resolve });
      this.waiters.sort((a, b) => b.size - a.size);
      this.dispatch();
    });
  }

  private tryTake(size: number): Grant | null {
    let idx: number[] = [];
    if (this.mode === "serial") {
      // Fill the busiest node that still has room: keeps whole nodes free.
      let best = -1;
      for (let i = 0; i < this.load.length; i++) {
        const l = this.load[i]!;
        if (l + size <= 1 + EPS && (best < 0 || l > this.load[best]!)) best = i;
      }
      if (best >= 0) idx = [best];
    } else {
      for (let i = 0; i < this.load.length && idx.length < size; i++) if (this.load[i]! <= EPS) idx.push(i);
      if (idx.length < size) idx = [];
    }
    if (idx.length === 0) return null;
    const share = this.mode === "serial" ? size : 1;
    for (const i of idx) this.load[i]! += share;
    let released = false;
    return {
      hosts: idx.map((i) => this.hosts[i]!),
      release: () => {
        if (released) return;
        released = true;
        for (const i of idx) this.load[i] = Math.max(0, this.load[i]! - share);
        this.dispatch();
      },
    };
  }

  private dispatch(): void {
    for (let k = 0; k < this.waiters.length; ) {
      const w = this.waiters[k]!;
      const g = this.tryTake(w.size);
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
  }
}
