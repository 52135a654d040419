/**
 * The evolutionary side of the polynome2 example's searches, as pure ask/tell
 * objects: no I/O, no clock, every random draw from a seeded generator.
 * `randomSearch` is the baseline; `Evolution` breeds the candidates that
 * AMBS (strategy.ts) screens with its surrogate (surrogate.ts).
 */
import type { Config, IntDimension } from "./problem.js";

/** Uniform in [0, 1). */
export type Random = () => number;

/** mulberry32: a small, fast, seedable generator — plenty for proposing configurations. */
export function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Observation {
  config: Config;
  objective: number;
}

/**
 * An asynchronous search: `ask()` whenever an evaluation slot is free,
 * `tell()` whenever a result arrives, in any order.
 */
export interface Strategy {
  /** The next configuration to evaluate; not one asked before while unasked ones are easy to find. */
  ask(): Config;
  /** The result of an asked configuration; `undefined` when its evaluation failed. */
  tell(config: Config, objective: number | undefined): void;
  /** The best result told so far. */
  best(): Observation | undefined;
  /** Results told so far (failures excluded), in the order told. */
  observations(): readonly Observation[];
}

export function key(dims: readonly IntDimension[], c: Config): string {
  return dims.map((d) => c[d.name]).join(",");
}

function randomConfig(dims: readonly IntDimension[], rnd: Random): Config {
  const c: Config = {};
  for (const d of dims) c[d.name] = d.low + Math.floor(rnd() * (d.high - d.low + 1));
  return c;
}

/** Box-Muller; one normal draw per call is enough here. */
function normal(rnd: Random): number {
  const u = 1 - rnd();
  const v = rnd();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Shared bookkeeping: what was asked, what was told, the best. */
abstract class Base implements Strategy {
  protected readonly asked = new Set<string>();
  protected readonly obs: Observation[] = [];
  private top: Observation | undefined;
  constructor(
    protected readonly dims: readonly IntDimension[],
    protected readonly rnd: Random,
  ) {
    if (dims.length === 0) throw new Error("a search needs at least one dimension");
  }
  abstract propose(): Config;
  ask(): Config {
    // Draws until an unasked point turns up; a nearly exhausted space repeats rather than spins.
    let c = this.propose();
    for (let tries = 0; tries < 64 && this.asked.has(key(this.dims, c)); tries++) c = tries < 32 ? this.propose() : randomConfig(this.dims, this.rnd);
    this.asked.add(key(this.dims, c));
    return c;
  }
  tell(config: Config, objective: number | undefined): void {
    if (objective === undefined || !Number.isFinite(objective)) return;
    const o = { config: { ...config }, objective };
    this.obs.push(o);
    if (!this.top || objective > this.top.objective) this.top = o;
  }
  best(): Observation | undefined {
    return this.top;
  }
  observations(): readonly Observation[] {
    return this.obs;
  }
}

class RandomSearch extends Base {
  propose(): Config {
    return randomConfig(this.dims, this.rnd);
  }
}

/** Uniform random sampling: the baseline. */
export function randomSearch(dims: readonly IntDimension[], seed: number): Strategy {
  return new RandomSearch(dims, mulberry32(seed));
}

export interface EvolutionOptions {
  seed: number;
  /** Random configurations asked before evolving. Default 10. */
  initialRandom?: number;
  /** Parents are drawn from the best `populationSize` results. Default 8. */
  populationSize?: number;
  /** Tournament size for drawing a parent. Default 3. */
  tournament?: number;
  /** Probability that a child mixes two parents (uniform crossover) before mutating. Default 0.3. */
  crossoverRate?: number;
  /** Initial mutation step, as a fraction of each dimension's range. Default 0.15. */
  initialStep?: number;
}

/**
 * Steady-state (μ+λ) evolution for integer boxes, asynchronous: every ask
 * breeds one child from the best results so far (tournament selection,
 * optional uniform crossover, Gaussian integer mutation of ~2 dimensions),
 * so a slot never waits for a generation to complete. The mutation step
 * adapts by the 1/5 success rule — a child that beats its parent widens it,
 * a failure narrows it — which on polynome2 shrinks it to ±1 moves near the
 * optimum within a few dozen evaluations.
 */
export class Evolution extends Base {
  protected readonly o: Required<Omit<EvolutionOptions, "seed">>;
  private step: number;
  /** Parent score of each bred configuration not yet told, for the 1/5 rule. */
  private readonly parentOf = new Map<string, number>();
  private proposals = 0;
  private readonly span: number;
  constructor(dims: readonly IntDimension[], opts: EvolutionOptions) {
    super(dims, mulberry32(opts.seed));
    this.o = { initialRandom: 10, populationSize: 8, tournament: 3, crossoverRate: 0.3, initialStep: 0.15, ...opts };
    this.span = Math.max(...dims.map((d) => d.high - d.low));
    this.step = Math.max(1, this.o.initialStep * this.span);
  }

  /** Counts a proposal and says whether it should still be a random one. */
  protected nextIsRandom(): boolean {
    this.proposals++;
    return this.proposals <= this.o.initialRandom || this.obs.length === 0;
  }

  protected random(): Config {
    return randomConfig(this.dims, this.rnd);
  }

  /** Records what a chosen child's parents scored, so its result can adapt the step. */
  protected chose(c: Config, parentScore: number): Config {
    this.parentOf.set(key(this.dims, c), parentScore);
    return c;
  }

  propose(): Config {
    if (this.nextIsRandom()) return this.random();
    const b = this.breed();
    return this.chose(b.config, b.parentScore);
  }

  private pick(pop: readonly Observation[]): Observation {
    let best = pop[Math.floor(this.rnd() * pop.length)]!;
    for (let i = 1; i < this.o.tournament; i++) {
      const c = pop[Math.floor(this.rnd() * pop.length)]!;
      if (c.objective > best.objective) best = c;
    }
    return best;
  }

  /** One child of the best results so far; no bookkeeping, so callers may breed and discard. */
  protected breed(pop = this.population()): { config: Config; parentScore: number } {
    const p1 = this.pick(pop);
    const child: Config = { ...p1.config };
    let parentScore = p1.objective;
    if (this.rnd() < this.o.crossoverRate && pop.length > 1) {
      const p2 = this.pick(pop);
      for (const d of this.dims) if (this.rnd() < 0.5) child[d.name] = p2.config[d.name]!;
      parentScore = Math.max(p1.objective, p2.objective);
    }
    return { config: this.mutate(child), parentScore };
  }

  protected population(): Observation[] {
    return [...this.obs].sort((a, b) => b.objective - a.objective).slice(0, this.o.populationSize);
  }

  private mutate(c: Config): Config {
    const out = { ...c };
    const rate = Math.min(1, 2 / this.dims.length);
    let changed = false;
    for (const d of this.dims) {
      if (this.rnd() >= rate) continue;
      out[d.name] = this.moved(d, out[d.name]!);
      changed = true;
    }
    if (!changed) {
      const d = this.dims[Math.floor(this.rnd() * this.dims.length)]!;
      out[d.name] = this.moved(d, out[d.name]!);
    }
    return out;
  }

  private moved(d: IntDimension, v: number): number {
    let delta = Math.round(normal(this.rnd) * this.step);
    if (delta === 0) delta = this.rnd() < 0.5 ? -1 : 1;
    return Math.min(d.high, Math.max(d.low, v + delta));
  }

  override tell(config: Config, objective: number | undefined): void {
    super.tell(config, objective);
    const k = key(this.dims, config);
    const parent = this.parentOf.get(k);
    if (parent === undefined) return;
    this.parentOf.delete(k);
    // 1/5 rule: at a 20 % success rate the step stays put (1.5 × (1.5^-¼)⁴ = 1).
    const success = objective !== undefined && objective > parent;
    this.step = success ? this.step * 1.5 : this.step * 1.5 ** -0.25;
    this.step = Math.min(this.span / 2, Math.max(0.5, this.step));
  }
}

/** Asynchronous steady-state evolution alone (see {@link EvolutionOptions}). */
export function evolution(dims: readonly IntDimension[], opts: EvolutionOptions): Strategy {
  return new Evolution(dims, opts);
}
