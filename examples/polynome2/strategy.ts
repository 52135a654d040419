/**
 * The search strategies of the polynome2 example, as pure ask/tell objects:
 * no I/O, no clock, every random draw from a seeded generator, so a test can
 * replay a whole search without servers. `ambs` is what AMBS runs: the
 * evolution of evolution.ts screened by the response surface of
 * surrogate.ts; `randomSearch` is the baseline it has to beat.
 */
import type { Config, IntDimension } from "./problem.js";
import { Evolution, key, mulberry32, type EvolutionOptions, type Observation, type Strategy } from "./evolution.js";
import { QuadraticSurrogate } from "./surrogate.js";

export { evolution, mulberry32, randomSearch, type EvolutionOptions, type Observation, type Random, type Strategy } from "./evolution.js";

export interface AmbsOptions extends EvolutionOptions {
  /** Children bred per ask; the surrogate picks one. Default 64. */
  candidates?: number;
  /** Probability of taking a bred child unscreened, so the search explores where the surface is wrong. Default 0.1. */
  explore?: number;
}

/**
 * Asynchronous model-based search, in the spirit of DeepHyper's AMBS: the
 * evolution of evolution.ts breeds candidates around the best results, a
 * quadratic response surface fitted to every result so far picks the one it
 * rates highest (its own maximiser is a candidate too), and now and then a
 * child goes unscreened. Until there are a few results it samples at random.
 */
class Ambs extends Evolution {
  private readonly surrogate: QuadraticSurrogate;
  private readonly nCandidates: number;
  private readonly explore: number;
  private fittedAt = -1;
  constructor(dims: readonly IntDimension[], opts: AmbsOptions) {
    super(dims, opts);
    this.surrogate = new QuadraticSurrogate(dims);
    this.nCandidates = opts.candidates ?? 64;
    this.explore = opts.explore ?? 0.1;
  }
  override propose(): Config {
    if (this.nextIsRandom()) return this.random();
    const pop = this.population();
    if (this.rnd() < this.explore) {
      const b = this.breed(pop);
      return this.chose(b.config, b.parentScore);
    }
    if (this.fittedAt !== this.obs.length) {
      this.surrogate.fit(this.obs);
      this.fittedAt = this.obs.length;
    }
    const incumbent = pop[0]!.objective;
    let best: { config: Config; parentScore: number } | undefined;
    let bestV = -Infinity;
    const consider = (c: { config: Config; parentScore: number }) => {
      if (this.asked.has(key(this.dims, c.config))) return;
      const v = this.surrogate.predict(c.config);
      if (v > bestV) {
        best = c;
        bestV = v;
      }
    };
    consider({ config: this.surrogate.argmax(), parentScore: incumbent });
    for (let i = 0; i < this.nCandidates; i++) consider(this.breed(pop));
    const chosen = best ?? this.breed(pop);
    return this.chose(chosen.config, chosen.parentScore);
  }
}

/** The AMBS strategy: surrogate-screened asynchronous evolution (see {@link AmbsOptions}). */
export function ambs(dims: readonly IntDimension[], opts: AmbsOptions): Strategy {
  return new Ambs(dims, opts);
}

export interface SimulationOptions {
  maxEvals: number;
  inFlight: number;
  /** Seeds the order in which in-flight evaluations complete. */
  seed: number;
}

/**
 * Replays an asynchronous search without servers: `inFlight` evaluations
 * outstanding, completing in a seeded random order, `maxEvals` in all — the
 * loop AMBS runs, with the objective called in place of a Balsam job.
 */
export function simulate(strategy: Strategy, objective: (c: Config) => number, o: SimulationOptions): Observation | undefined {
  const rnd = mulberry32(o.seed ^ 0x9e3779b9);
  const pending: Config[] = [];
  let asked = 0;
  const fill = () => {
    while (pending.length < o.inFlight && asked < o.maxEvals) {
      pending.push(strategy.ask());
      asked++;
    }
  };
  fill();
  while (pending.length > 0) {
    const [c] = pending.splice(Math.floor(rnd() * pending.length), 1);
    strategy.tell(c!, objective(c!));
    fill();
  }
  return strategy.best();
}
