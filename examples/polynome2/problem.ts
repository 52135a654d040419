/**
 * DeepHyper's `polynome2` benchmark (`deephyper.benchmark.hps.polynome2`):
 * ten integer dimensions e0..e9 in [-10, 10]; the objective, maximised, is
 * -Σ eᵢ², best 0 at all zeros. Cheap on purpose: it tests the search and the
 * machinery around it, not a model.
 */

/** An integer dimension with inclusive bounds. */
export interface IntDimension {
  name: string;
  low: number;
  high: number;
}

/** One point of the search space: dimension name → value. */
export type Config = Record<string, number>;

export interface SearchProblem {
  /** How `--problem` names it, e.g. `polynome2.Problem`. */
  name: string;
  dimensions: readonly IntDimension[];
  /** Maximised. */
  objective(config: Config): number;
}

export const Problem: SearchProblem = {
  name: "polynome2.Problem",
  dimensions: Array.from({ length: 10 }, (_, i) => ({ name: `e${i}`, low: -10, high: 10 })),
  objective(config: Config): number {
    let s = 0;
    for (const d of Problem.dimensions) s += config[d.name]! ** 2;
    // 0 - s, not -s: the optimum is +0, which prints and compares as plain 0.
    return 0 - s;
  },
};

/** The problems `--problem` can name; a dotted prefix (`deephyper.benchmark.hps.`) is ignored. */
export const PROBLEMS: Readonly<Record<string, SearchProblem>> = { [Problem.name]: Problem };

export function findProblem(name: string): SearchProblem | undefined {
  const exact = PROBLEMS[name];
  if (exact) return exact;
  return Object.values(PROBLEMS).find((p) => name.endsWith(`.${p.name}`));
}

/**
 * A configuration as DeepHyper's Balsam evaluator wrote it into a job's args:
 * Python's `json.dumps` spacing, in dimension order — `{"e0": 1, "e1": 9}`.
 */
export function encodeConfig(problem: SearchProblem, config: Config): string {
  return `{${problem.dimensions.map((d) => `${JSON.stringify(d.name)}: ${config[d.name]}`).join(", ")}}`;
}

/** The job args for one evaluation: the JSON dict single-quoted, so the launcher passes it as one argument. */
export function configArgs(problem: SearchProblem, config: Config): string {
  return `'${encodeConfig(problem, config)}'`;
}

/**
 * Reads a configuration from a command line or job args: a JSON object,
 * optionally in single quotes, with an integer in bounds for every dimension
 * and nothing else.
 */
export function parseConfig(problem: SearchProblem, text: string): Config {
  let t = text.trim();
  if (t.length >= 2 && t.startsWith("'") && t.endsWith("'")) t = t.slice(1, -1);
  let raw: unknown;
  try {
    raw = JSON.parse(t);
  } catch {
    throw new Error(`expected a JSON object like {"e0": 1, ...}, got ${JSON.stringify(text)}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error(`expected a JSON object, got ${JSON.stringify(text)}`);
  const obj = raw as Record<string, unknown>;
  const known = new Set(problem.dimensions.map((d) => d.name));
  for (const k of Object.keys(obj)) if (!known.has(k)) throw new Error(`unknown dimension '${k}' (${problem.name} has ${[...known].join(", ")})`);
  const config: Config = {};
  for (const d of problem.dimensions) {
    const v = obj[d.name];
    if (typeof v !== "number" || !Number.isInteger(v) || v < d.low || v > d.high) {
      throw new Error(`${d.name} must be an integer in [${d.low}, ${d.high}], got ${JSON.stringify(v)}`);
    }
    config[d.name] = v;
  }
  return config;
}
