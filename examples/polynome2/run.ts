/**
 * `polynome2.run`: evaluates one configuration, given as the JSON dict the
 * search put in the job's args, and prints `DH-OUTPUT: <objective>` — the
 * line the launcher stores as the job's result.
 *
 *   node dist/examples/polynome2/run.js '{"e0": 1, "e1": 9, ...}'
 */
import { Problem, encodeConfig, parseConfig } from "./problem.js";

try {
  const config = parseConfig(Problem, process.argv.slice(2).join(" "));
  console.log(`polynome2 at ${encodeConfig(Problem, config)}`);
  console.log(`DH-OUTPUT: ${Problem.objective(config)}`);
} catch (err) {
  console.error(`polynome2.run: ${(err as Error).message}`);
  process.exitCode = 1;
}
