#!/usr/bin/env python3
"""`AMBS` in Python: the polynome2 search of examples/polynome2/ambs.ts,
written against the Python client (`balsam web`'s API) as DeepHyper's AMBS
was written against Balsam 0.x. It runs as the seed's search job:

    balsam app --name AMBS --executable "python3 examples/polynome2/search.py"
    balsam job --name test --application AMBS --workflow TEST \\
      --args '--evaluator balsam --problem polynome2.Problem --run polynome2.run'

It keeps --in-flight evaluations (`task0`, `task1`, ... of app --run, in its
own workflow) queued or running, takes each result as the server pushes it,
asks the strategy for the next configuration, and stops after --max-evals.
The strategy is the TypeScript one's (strategy.ts): steady-state evolution
whose children are screened by a quadratic response surface. Prints every
result, then the best, stored as this job's result (`BALSAM-RESULT:`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Dict, List, Optional, Tuple

try:
    import balsam
except ImportError:  # run from a checkout without installing the client
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
    import balsam

Config = Dict[str, int]
DIMS: List[Tuple[str, int, int]] = [(f"e{i}", -10, 10) for i in range(10)]
PROBLEMS = ("polynome2.Problem",)


def find_problem(name: str) -> Optional[str]:
    """`polynome2.Problem`, or a dotted path ending in it (`deephyper.benchmark.hps.polynome2.Problem`)."""
    for p in PROBLEMS:
        if name == p or name.endswith("." + p):
            return p
    return None


def encode(config: Config) -> str:
    """As DeepHyper's evaluator wrote a configuration into a job's args: json.dumps spacing, dimension order."""
    return "{" + ", ".join(f'"{n}": {config[n]}' for n, _, _ in DIMS) + "}"


def parse_config(args: str) -> Config:
    t = args.strip()
    if len(t) >= 2 and t[0] == t[-1] == "'":
        t = t[1:-1]
    raw = json.loads(t)
    return {n: int(raw[n]) for n, _, _ in DIMS}


class Mulberry32:
    """The seedable generator strategy.ts uses, so a seed means the same kind of thing in both."""

    def __init__(self, seed: int):
        self.a = seed & 0xFFFFFFFF

    def __call__(self) -> float:
        self.a = (self.a + 0x6D2B79F5) & 0xFFFFFFFF
        t = self.a
        t = _imul(t ^ (t >> 15), t | 1)
        t ^= (t + _imul(t ^ (t >> 7), t | 61)) & 0xFFFFFFFF
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296


def _imul(a: int, b: int) -> int:
    return (a * b) & 0xFFFFFFFF


def _key(c: Config) -> Tuple[int, ...]:
    return tuple(c[n] for n, _, _ in DIMS)


class Ambs:
    """Asynchronous model-based search: after `initial_random` random points,
    each ask breeds `candidates` children of the best results (tournament,
    uniform crossover, Gaussian integer mutation with a 1/5-rule step) and a
    separable quadratic surface fitted to all results picks the one it rates
    highest; now and then (`explore`) a child goes unscreened."""

    def __init__(self, seed: int, initial_random: int = 10, population: int = 8, tournament: int = 3,
                 crossover: float = 0.3, initial_step: float = 0.15, candidates: int = 64, explore: float = 0.1):
        self.rnd = Mulberry32(seed)
        self.initial_random, self.population_size, self.tournament = initial_random, population, tournament
        self.crossover, self.candidates, self.explore = crossover, candidates, explore
        self.span = max(h - lo for _, lo, h in DIMS)
        self.step = max(1.0, initial_step * self.span)
        self.asked = set()
        self.obs: List[Tuple[Config, float]] = []
        self.parent_of: Dict[Tuple[int, ...], float] = {}
        self.proposals = 0
        self.w: List[float] = []
        self.y_mean, self.y_scale, self.fitted_at = 0.0, 1.0, -1

    # -- ask / tell ------------------------------------------------------
    def ask(self) -> Config:
        c = self.propose()
        tries = 0
        while _key(c) in self.asked and tries < 64:
            c = self.propose() if tries < 32 else self.random()
            tries += 1
        self.asked.add(_key(c))
        return c

    def tell(self, config: Config, objective: Optional[float]) -> None:
        if objective is not None and math.isfinite(objective):
            self.obs.append((dict(config), objective))
        parent = self.parent_of.pop(_key(config), None)
        if parent is None:
            return
        # 1/5 rule: at a 20 % success rate the step stays put (1.5 × (1.5^-¼)⁴ = 1).
        success = objective is not None and objective > parent
        self.step = self.step * 1.5 if success else self.step * 1.5 ** -0.25
        self.step = min(self.span / 2, max(0.5, self.step))

    # -- proposals -------------------------------------------------------
    def random(self) -> Config:
        return {n: lo + math.floor(self.rnd() * (h - lo + 1)) for n, lo, h in DIMS}

    def propose(self) -> Config:
        self.proposals += 1
        if self.proposals <= self.initial_random or not self.obs:
            return self.random()
        pop = sorted(self.obs, key=lambda o: -o[1])[: self.population_size]
        if self.rnd() < self.explore:
            return self.chose(*self.breed(pop))
        if self.fitted_at != len(self.obs):
            self.fit()
            self.fitted_at = len(self.obs)
        best, best_v = None, -math.inf
        for cand in [(self.argmax(), pop[0][1])] + [self.breed(pop) for _ in range(self.candidates)]:
            if _key(cand[0]) in self.asked:
                continue
            v = self.predict(cand[0])
            if v > best_v:
                best, best_v = cand, v
        return self.chose(*(best or self.breed(pop)))

    def chose(self, config: Config, parent_score: float) -> Config:
        self.parent_of[_key(config)] = parent_score
        return config

    def pick(self, pop):
        best = pop[math.floor(self.rnd() * len(pop))]
        for _ in range(1, self.tournament):
            c = pop[math.floor(self.rnd() * len(pop))]
            if c[1] > best[1]:
                best = c
        return best

    def breed(self, pop) -> Tuple[Config, float]:
        p1 = self.pick(pop)
        child, parent_score = dict(p1[0]), p1[1]
        if self.rnd() < self.crossover and len(pop) > 1:
            p2 = self.pick(pop)
            for n, _, _ in DIMS:
                if self.rnd() < 0.5:
                    child[n] = p2[0][n]
            parent_score = max(p1[1], p2[1])
        return self.mutate(child), parent_score

    def mutate(self, c: Config) -> Config:
        out = dict(c)
        rate = min(1.0, 2 / len(DIMS))
        changed = False
        for d in DIMS:
            if self.rnd() >= rate:
                continue
            out[d[0]] = self.moved(d, out[d[0]])
            changed = True
        if not changed:
            d = DIMS[math.floor(self.rnd() * len(DIMS))]
            out[d[0]] = self.moved(d, out[d[0]])
        return out

    def moved(self, d, v: int) -> int:
        u, w = 1 - self.rnd(), self.rnd()
        # floor(x + 0.5) is JavaScript's Math.round; Python's round() goes to even on .5.
        delta = math.floor(math.sqrt(-2 * math.log(u)) * math.cos(2 * math.pi * w) * self.step + 0.5)
        if delta == 0:
            delta = -1 if self.rnd() < 0.5 else 1
        return min(d[2], max(d[1], v + delta))

    # -- the quadratic surface: f ≈ w0 + Σ a_i x_i + Σ b_i x_i², x scaled to [-1, 1], ridge 1e-2
    @staticmethod
    def scaled(d, v: int) -> float:
        half = (d[2] - d[1]) / 2 or 1
        return (v - (d[1] + half)) / half

    def features(self, c: Config) -> List[float]:
        xs = [self.scaled(d, c[d[0]]) for d in DIMS]
        return [1.0] + xs + [x * x for x in xs]

    def fit(self) -> None:
        ys = [o for _, o in self.obs]
        n = len(ys)
        self.y_mean = sum(ys) / n
        sd = math.sqrt(sum((y - self.y_mean) ** 2 for y in ys) / n)
        self.y_scale = sd if sd > 0 else 1.0
        p = 1 + 2 * len(DIMS)
        a = [[0.0] * p for _ in range(p)]
        b = [0.0] * p
        for c, y in self.obs:
            f = self.features(c)
            yy = (y - self.y_mean) / self.y_scale
            for i in range(p):
                b[i] += f[i] * yy
                for j in range(p):
                    a[i][j] += f[i] * f[j]
        for i in range(1, p):
            a[i][i] += 1e-2
        a[0][0] += 1e-9
        self.w = _solve(a, b)

    def predict(self, c: Config) -> float:
        return self.y_mean + self.y_scale * sum(f * w for f, w in zip(self.features(c), self.w))

    def argmax(self) -> Config:
        k = len(DIMS)
        out: Config = {}
        for i, d in enumerate(DIMS):
            lin, quad = self.w[1 + i], self.w[1 + k + i]
            out[d[0]] = max(range(d[1], d[2] + 1), key=lambda v: lin * self.scaled(d, v) + quad * self.scaled(d, v) ** 2)
        return out


def _solve(a: List[List[float]], b: List[float]) -> List[float]:
    """Gaussian elimination with partial pivoting (the system is 21×21)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        if abs(m[c][c]) < 1e-12:
            continue
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            if f:
                for k in range(c, n + 1):
                    m[r][k] -= f * m[c][k]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        if abs(m[r][r]) < 1e-12:
            continue
        x[r] = (m[r][n] - sum(m[r][k] * x[k] for k in range(r + 1, n))) / m[r][r]
    return x


def objective_of(r: "balsam.Result") -> Optional[float]:
    if r.state != "JOB_FINISHED" or isinstance(r.result, bool) or not isinstance(r.result, (int, float)):
        return None
    return float(r.result) if math.isfinite(r.result) else None


def run_search(b: "balsam.Balsam", me: "balsam.Job", run_app: str, max_evals: int, in_flight: int, seed: int) -> Dict:
    strategy = Ambs(seed)
    flying: Dict[str, Tuple[str, Config]] = {}
    best: Optional[Dict] = None
    ended = failed = next_task = 0

    # A search restarted under the same id (RESTART_READY) picks up its own evaluations.
    mine = [j for j in b.jobs.filter(workflow=me.workflow, name__contains="task", application=run_app) if (j.data or {}).get("search") == me.job_id]
    for j in mine:
        if j.name[4:].isdigit():
            next_task = max(next_task, int(j.name[4:]) + 1)
        flying[j.job_id] = (j.name, parse_config(j.args))
    if mine:
        print(f"resuming: {len(mine)} evaluation(s) of this search already exist", flush=True)

    def refill() -> None:
        nonlocal next_task
        n = min(in_flight - len(flying), max_evals - ended - len(flying))
        if n <= 0:
            return
        specs, configs = [], []
        for _ in range(n):
            config = strategy.ask()
            name = f"task{next_task}"
            next_task += 1
            configs.append((name, config))
            specs.append({"name": name, "workflow": me.workflow, "application": run_app, "args": f"'{encode(config)}'",
                          "node_packing_count": me.node_packing_count, "data": {"search": me.job_id}})
        for job, nc in zip(b.jobs.add_many(specs), configs):
            flying[job.job_id] = nc

    refill()
    while flying:
        # One stream per round over what is in flight now: results already
        # final come first on it, so none is missed between rounds; it is
        # closed at the first result so the new evaluations join the next one.
        stream = b.results(list(flying))
        r = next(stream, None)
        stream.close()
        if r is None:
            break
        name, config = flying.pop(r.id)
        ended += 1
        obj = objective_of(r)
        strategy.tell(config, obj)
        if obj is None:
            failed += 1
            print(f"{name} {r.state} without a result", flush=True)
        else:
            if best is None or obj > best["objective"]:
                best = {"config": config, "objective": obj, "job": name}
            print(f"{name} {encode(config)} -> {obj:g} (best {best['objective']:g})", flush=True)
        refill()
    return {"best": best, "evaluations": ended, "failed": failed}


def main() -> int:
    ap = argparse.ArgumentParser(prog="AMBS", description=__doc__.split("\n\n")[0])
    ap.add_argument("--evaluator", default="balsam")
    ap.add_argument("--problem", required=True)
    ap.add_argument("--run", required=True, help="the Balsam app that evaluates one configuration (e.g. polynome2.run)")
    ap.add_argument("--max-evals", type=int, default=40)
    ap.add_argument("--in-flight", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    o = ap.parse_args()
    if o.evaluator != "balsam":
        ap.error(f"--evaluator {o.evaluator}: only 'balsam' is supported")
    problem = find_problem(o.problem)
    if not problem:
        ap.error(f"unknown problem '{o.problem}' (known: {', '.join(PROBLEMS)})")
    if o.max_evals < 1 or o.in_flight < 1 or o.seed < 0:
        ap.error("--max-evals and --in-flight must be ≥ 1, --seed ≥ 0")
    try:
        b = balsam.Balsam()
        me = b.current_job()
        b.apps.get(o.run)  # a clear error now rather than at the first evaluation
        print(f"AMBS (Python) on {problem}: {o.max_evals} evaluations of app {o.run}, {o.in_flight} in flight, seed {o.seed}, workflow {me.workflow}", flush=True)
        t0 = time.monotonic()
        out = run_search(b, me, o.run, o.max_evals, o.in_flight, o.seed)
    except balsam.BalsamError as e:
        print(f"AMBS: {e}", file=sys.stderr)
        return 1
    print(f"{out['evaluations']} evaluations ({out['failed']} failed) in {time.monotonic() - t0:.1f} s")
    best = out["best"]
    if not best:
        print("AMBS: no evaluation produced a result", file=sys.stderr)
        return 1
    objective = int(best["objective"]) if float(best["objective"]).is_integer() else best["objective"]
    print(f"best: {best['job']} {encode(best['config'])} objective {objective}")
    print("BALSAM-RESULT: " + json.dumps({"objective": objective, "config": best["config"], "job": best["job"], "evaluations": out["evaluations"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
