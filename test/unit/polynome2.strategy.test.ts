import { test } from "node:test";
import assert from "node:assert/strict";
import { Problem, configArgs, encodeConfig, findProblem, parseConfig, type Config } from "../../examples/polynome2/problem.js";
import { ambs, evolution, mulberry32, randomSearch, simulate, type Strategy } from "../../examples/polynome2/strategy.js";

const DIMS = Problem.dimensions;
const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

function bestOf(make: (seed: number) => Strategy, objective: (c: Config) => number, maxEvals: number, seed: number): number {
  return simulate(make(seed), objective, { maxEvals, inFlight: 4, seed })!.objective;
}

function compare(make: (seed: number) => Strategy, objective: (c: Config) => number, maxEvals: number) {
  const search = SEEDS.map((s) => bestOf(make, objective, maxEvals, s));
  const random = SEEDS.map((s) => bestOf((x) => randomSearch(DIMS, x), objective, maxEvals, s));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { search, random, wins: search.filter((x, i) => x > random[i]!).length, meanSearch: mean(search), meanRandom: mean(random) };
}

test("polynome2: the objective is -Σeᵢ², 0 at the origin, and configs round-trip through job args", () => {
  const zero = Object.fromEntries(DIMS.map((d) => [d.name, 0]));
  assert.equal(Problem.objective(zero), 0);
  const c = { e0: 1, e1: 9, e2: 5, e3: 6, e4: 2, e5: 6, e6: -10, e7: -6, e8: 1, e9: -9 };
  assert.equal(Problem.objective(c), -401);
  // The seed's table shows exactly this text in the args column.
  assert.equal(configArgs(Problem, c), `'{"e0": 1, "e1": 9, "e2": 5, "e3": 6, "e4": 2, "e5": 6, "e6": -10, "e7": -6, "e8": 1, "e9": -9}'`);
  assert.deepEqual(parseConfig(Problem, configArgs(Problem, c)), c);
  assert.deepEqual(parseConfig(Problem, encodeConfig(Problem, c)), c);
  assert.throws(() => parseConfig(Problem, '{"e0": 11}'), /e0 must be an integer in \[-10, 10\]/);
  assert.throws(() => parseConfig(Problem, JSON.stringify({ ...c, e10: 0 })), /unknown dimension 'e10'/);
  assert.throws(() => parseConfig(Problem, JSON.stringify({ ...c, e3: 1.5 })), /e3 must be an integer/);
  assert.equal(findProblem("polynome2.Problem"), Problem);
  assert.equal(findProblem("deephyper.benchmark.hps.polynome2.Problem"), Problem);
  assert.equal(findProblem("polynome3.Problem"), undefined);
});

test("AMBS beats random search on polynome2 at equal evaluations, on every seed (40 and 100 evaluations, 4 in flight)", () => {
  for (const n of [40, 100]) {
    const r = compare((s) => ambs(DIMS, { seed: s }), Problem.objective, n);
    assert.equal(r.wins, SEEDS.length, `${n} evals: AMBS ${r.search.join(" ")} vs random ${r.random.join(" ")}`);
    // Not a photo finish: random search's best is far from the optimum at these budgets.
    assert.ok(r.meanSearch > r.meanRandom + 50, `${n} evals: mean ${r.meanSearch} vs ${r.meanRandom}`);
  }
});

test("the evolution under AMBS beats random search by itself too, given 100 evaluations", () => {
  const r = compare((s) => evolution(DIMS, { seed: s }), Problem.objective, 100);
  assert.equal(r.wins, SEEDS.length, `evolution ${r.search.join(" ")} vs random ${r.random.join(" ")}`);
});

test("AMBS still beats random search on a shifted, non-quadratic objective its surrogate cannot fit exactly", () => {
  // -Σ|eᵢ - tᵢ| with the target away from the centre: guards against a strategy that only works on polynome2.
  const target = DIMS.map((_, i) => (i % 2 ? 3 : -4));
  const l1 = (c: Config) => -DIMS.reduce((a, d, i) => a + Math.abs(c[d.name]! - target[i]!), 0);
  const r = compare((s) => ambs(DIMS, { seed: s }), l1, 40);
  assert.equal(r.wins, SEEDS.length, `AMBS ${r.search.join(" ")} vs random ${r.random.join(" ")}`);
});

test("proposals are deterministic per seed, integers within bounds, and never repeated", () => {
  const run = (seed: number) => {
    const s = ambs(DIMS, { seed });
    const asked: Config[] = [];
    simulate(
      {
        ask: () => {
          const c = s.ask();
          asked.push(c);
          return c;
        },
        tell: (c, o) => s.tell(c, o),
        best: () => s.best(),
        observations: () => s.observations(),
      },
      Problem.objective,
      { maxEvals: 200, inFlight: 8, seed },
    );
    return asked;
  };
  const a = run(42);
  assert.deepEqual(run(42), a);
  assert.notDeepEqual(run(43), a);
  assert.equal(a.length, 200);
  const keys = new Set(a.map((c) => encodeConfig(Problem, c)));
  assert.equal(keys.size, a.length, "a configuration was proposed twice");
  for (const c of a) for (const d of DIMS) assert.ok(Number.isInteger(c[d.name]) && c[d.name]! >= d.low && c[d.name]! <= d.high, JSON.stringify(c));
});

test("failed evaluations are told as undefined and do not count as results", () => {
  const s = ambs(DIMS, { seed: 1 });
  const c = s.ask();
  s.tell(c, undefined);
  assert.equal(s.best(), undefined);
  assert.equal(s.observations().length, 0);
  s.tell(c, -5);
  assert.equal(s.best()?.objective, -5);
  // The generator is the usual mulberry32: same seed, same stream.
  assert.equal(mulberry32(7)(), mulberry32(7)());
});
