/**
 * `AMBS`: the asynchronous search application of the polynome2 example. It
 * runs as a Balsam job and adds its evaluations, `task0`, `task1`, ..., to its
 * own workflow, as DeepHyper's AMBS did with Balsam 0.x:
 *
 *   balsam job --name test --application AMBS --workflow TEST \
 *     --args '--evaluator balsam --problem polynome2.Problem --run polynome2.run'
 *
 * Flags: --max-evals N (default 40), --in-flight K (default 4), --seed S
 * (default 0). Evaluations get the search job's node_packing_count, so a
 * search job packed 5 per node shares one node with its 4 evaluations.
 * Prints every result, then the best, and stores the best as this job's
 * result (`BALSAM-RESULT:`).
 */
import { parseArgs } from "node:util";
import { connect, coerceError } from "../../libs/client/index.js";
import { encodeConfig, findProblem, PROBLEMS } from "./problem.js";
import { runSearch } from "./search.js";

function positiveInt(name: string, v: string | undefined, d: number, min = 1): number {
  if (v === undefined) return d;
  if (!/^\d+$/.test(v) || Number(v) < min) throw new Error(`--${name} must be a whole number ≥ ${min}, not '${v}'`);
  return Number(v);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      evaluator: { type: "string", default: "balsam" },
      problem: { type: "string" },
      run: { type: "string" },
      "max-evals": { type: "string" },
      "in-flight": { type: "string" },
      seed: { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.evaluator !== "balsam") throw new Error(`--evaluator ${values.evaluator}: only 'balsam' is supported`);
  if (!values.problem) throw new Error(`--problem is required (one of ${Object.keys(PROBLEMS).join(", ")})`);
  const problem = findProblem(values.problem);
  if (!problem) throw new Error(`unknown problem '${values.problem}' (known: ${Object.keys(PROBLEMS).join(", ")})`);
  if (!values.run) throw new Error("--run is required: the Balsam app that evaluates one configuration (e.g. polynome2.run)");
  const maxEvals = positiveInt("max-evals", values["max-evals"], 40);
  const inFlight = positiveInt("in-flight", values["in-flight"], 4);
  const seed = positiveInt("seed", values.seed, 0, 0);

  const balsam = await connect();
  try {
    const me = await balsam.currentJob();
    await balsam.apps.get(values.run); // a clear error now rather than at the first evaluation
    if (me.nodePackingCount === 1) {
      console.log(
        `note: this search job has node_packing_count 1, so it fills a node by itself and its evaluations can only run on a launcher's other nodes (add the job with --node-packing-count ${inFlight + 1} to share one node)`,
      );
    }
    console.log(`AMBS on ${problem.name}: ${maxEvals} evaluations of app ${values.run}, ${inFlight} in flight, seed ${seed}, workflow ${me.workflow}`);
    const t0 = Date.now();
    const outcome = await runSearch({
      balsam,
      problem,
      runApp: values.run,
      workflow: me.workflow,
      maxEvals,
      inFlight,
      seed,
      nodePackingCount: me.nodePackingCount,
      searchJobId: me._id,
      log: (l) => console.log(l),
    });
    const secs = (Date.now() - t0) / 1000;
    console.log(`${outcome.evaluations} evaluations (${outcome.failed} failed) in ${secs.toFixed(1)} s`);
    if (!outcome.best) throw new Error("no evaluation produced a result");
    console.log(`best: ${outcome.best.job} ${encodeConfig(problem, outcome.best.config)} objective ${outcome.best.objective}`);
    console.log(`BALSAM-RESULT: ${JSON.stringify({ objective: outcome.best.objective, config: outcome.best.config, job: outcome.best.job, evaluations: outcome.evaluations })}`);
  } finally {
    await balsam.close();
  }
}

main().catch((err: unknown) => {
  console.error(`AMBS: ${coerceError(err).message}`);
  process.exitCode = 1;
});
