/**
 * `npm run demo`: the seed's experiment end to end — DeepHyper's polynome2
 * search run by Balsam — with the real `balsam` commands, printed as they
 * run:
 *
 *   1. a database directory (`./demo-db`, or $BALSAM_DEMO_DIR) and its
 *      local servers (`balsam init`, `balsam server --connect`);
 *   2. the two apps: AMBS (the search) and polynome2.run (one evaluation);
 *   3. the seed's search job, `test` in workflow TEST;
 *   4. a serial launcher on TEST until the search is done: the search adds
 *      its `task<N>` evaluations while it runs, packed beside it on the node;
 *   5. the seed's table (`BALSAM_LS_FIELDS=num_nodes:args balsam ls --wf TEST`)
 *      and the best configuration found.
 *
 * Run it again and it reuses the database: the previous TEST jobs are deleted
 * first with the seed's workflow-scoped filter-delete. The servers are
 * stopped at the end unless `--keep-servers` (or BALSAM_DEMO_KEEP=1).
 *
 * `--python`: the search is examples/polynome2/search.py on the Python
 * client, which talks to `balsam web` — started here for the run and stopped
 * after it.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { quote } from "shell-quote";
import { connect, coerceError, FINISHED_CHANNEL, type Balsam } from "../libs/client/index.js";
import { isLocal, readSettings } from "../libs/config/index.js";
import { Problem, encodeConfig, type Config } from "./polynome2/problem.js";
import { randomSearch, simulate } from "./polynome2/strategy.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const BALSAM_BIN = join(ROOT, "bin", "balsam.js");
const WORKFLOW = "TEST";
const SEARCH_ARGS = "--evaluator balsam --problem polynome2.Problem --run polynome2.run";
/** AMBS's defaults, repeated here only to say what the search will do. */
const MAX_EVALS = 40;
const IN_FLIGHT = 4;
/** The search and its 4 in-flight evaluations share one node. */
const PACKING = IN_FLIGHT + 1;

const dir = resolve(process.env.BALSAM_DEMO_DIR ?? join(ROOT, "demo-db"));
const keepServers = process.argv.includes("--keep-servers") || process.env.BALSAM_DEMO_KEEP === "1";
const python = process.argv.includes("--python");
const timeoutMs = Number(process.env.BALSAM_DEMO_TIMEOUT_MS ?? 10 * 60_000);
const env: NodeJS.ProcessEnv = { ...process.env, BALSAM_DB_PATH: dir };

function say(line = ""): void {
  process.stdout.write(line + "\n");
}

function show(args: readonly string[], prefix = ""): void {
  say(`\n$ ${prefix}balsam ${quote([...args])}`);
}

/**
 * Runs the real CLI as a user would; its output goes to the terminal, or is
 * returned with `capture`. Rejects on a non-zero exit.
 */
function balsam(args: readonly string[], opts: { extraEnv?: NodeJS.ProcessEnv; capture?: boolean; prefix?: string } = {}): Promise<string> {
  show(args, opts.prefix);
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [BALSAM_BIN, ...args], {
      env: { ...env, ...opts.extraEnv },
      stdio: ["ignore", opts.capture ? "pipe" : "inherit", "inherit"],
    });
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      process.stdout.write(d);
    });
    child.on("error", rej);
    child.on("close", (code) => (code === 0 ? res(out) : rej(new Error(`balsam ${args[0]} exited with ${code}`))));
  });
}

/** Registers an app, or says it is there (and fixes its executable if the project moved). */
async function ensureApp(b: Balsam, name: string, executable: string, description: string): Promise<void> {
  const app = await b.apps.find(name);
  if (!app) {
    await balsam(["app", "--name", name, "--executable", executable, "--description", description]);
    return;
  }
  if (app.executable === executable) {
    say(`\n# app ${name} is already registered: ${app.executable}`);
    return;
  }
  await b.apps.update(name, { executable });
  say(`\n# app ${name} pointed at ${executable} (was ${app.executable})`);
}

/** The seed's advice for running an experiment again, scoped to the workflow as its Django snippet is. */
async function removePreviousRun(b: Balsam): Promise<void> {
  const before = await b.jobs.filter({ workflow: WORKFLOW }).count();
  if (before === 0) return;
  say(`\n# ${WORKFLOW} holds ${before} job(s) from a previous run; deleting them as the seed advises, scoped to the`);
  say(`# workflow like its BalsamJob.objects.filter(name__contains=..., workflow="${WORKFLOW}").delete():`);
  if (python) {
    // The seed's script_with_django_model.py itself, on the Python client.
    for (const name of ["task", "test"]) {
      const n0 = await b.jobs.filter({ workflow: WORKFLOW }).count();
      await seedScript(name);
      say(`#   python script_with_django_model.py ${WORKFLOW} ${name}  → ${n0 - (await b.jobs.filter({ workflow: WORKFLOW }).count())} deleted`);
    }
  }
  for (const name of python ? [] : ["task", "test"]) {
    const n = await b.jobs.filter({ name, workflow: WORKFLOW }).delete();
    say(`#   balsam.jobs.filter({ name: "${name}", workflow: "${WORKFLOW}" }).delete()  → ${n} deleted`);
  }
  const left = await b.jobs.filter({ workflow: WORKFLOW }).count();
  if (left > 0) say(`# ${left} other job(s) remain in ${WORKFLOW}; the launcher will run them too`);
}

/**
 * `balsam web` in the background, for the Python search; resolves once it
 * has written web.json and printed its address, with a function stopping it.
 */
async function startWeb(): Promise<() => Promise<void>> {
  const args = ["web", "--port", "0"];
  say(`\n$ balsam ${quote(args)} &     # the Python client talks to its API`);
  const child = spawn(process.execPath, [BALSAM_BIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number>((r) => child.on("close", (c) => r(c ?? 1)));
  await new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error("balsam web did not start within 60 s")), 60_000);
    createInterface({ input: child.stderr }).on("line", (l) => say(`  web| ${l}`));
    createInterface({ input: child.stdout }).on("line", (l) => {
      // The address line carries the token: say where it is instead of printing it.
      say(`  web| ${l.replace(/token=[0-9a-f]+/, "token=… (in web.json)")}`);
      if (l.includes("?token=")) {
        clearTimeout(timer);
        res();
      }
    });
    void exited.then((c) => {
      clearTimeout(timer);
      rej(new Error(`balsam web exited with ${c}`));
    });
  });
  return async () => {
    child.kill("SIGTERM");
    await exited;
  };
}

const SEED_SCRIPT = `import sys
from balsam.launcher.dag import BalsamJob

BalsamJob.objects.filter(name__contains=sys.argv[2], workflow=sys.argv[1]).delete()
`;

/** `python script_with_django_model.py TEST <name>`, the seed's script verbatim (through `python3 -c`). */
async function seedScript(name: string): Promise<void> {
  const pyEnv = { ...env, PYTHONPATH: [join(ROOT, "clients", "python"), process.env.PYTHONPATH].filter(Boolean).join(":") };
  const child = spawn("python3", ["-c", SEED_SCRIPT, WORKFLOW, name], { env: pyEnv, stdio: ["ignore", "inherit", "inherit"] });
  const code = await new Promise<number>((r) => {
    child.on("error", () => r(127));
    child.on("close", (c) => r(c ?? 1));
  });
  if (code !== 0) throw new Error(`the seed's Python delete exited with ${code}`);
}

/** A serial launcher on TEST, its log lines indented; stopped if it outlives the time limit. */
async function runLauncher(): Promise<number> {
  const args = ["launcher", "--job-mode", "serial", "--wf-filter", WORKFLOW];
  show(args);
  const child = spawn(process.execPath, [BALSAM_BIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  for (const s of [child.stdout, child.stderr]) {
    createInterface({ input: s }).on("line", (l) => say(`  | ${l}`));
  }
  const timer = setTimeout(() => {
    say(`  ! the launcher ran longer than ${timeoutMs / 1000} s; stopping it`);
    child.kill("SIGTERM");
  }, timeoutMs);
  const code = await new Promise<number>((r) => child.on("close", (c) => r(c ?? 1)));
  clearTimeout(timer);
  return code;
}

interface SearchResult {
  objective: number;
  config: Config;
  job: string;
  evaluations: number;
}

async function main(): Promise<void> {
  say(`Balsam demo: DeepHyper's polynome2 search, as in the seed's "Managing Experiments with Balsam"`);
  say(`database directory: ${dir}${existsSync(join(dir, "settings.json")) ? " (exists: reused)" : " (new)"}`);
  if (!existsSync(join(dir, "settings.json"))) await balsam(["init", dir]);
  say(`\n$ export BALSAM_DB_PATH=${quote([dir])}`);
  await balsam(["server", "--connect"]);
  const local = isLocal(readSettings(dir).mongoUrl) || isLocal(readSettings(dir).redisUrl);

  const b = await connect({ dbPath: dir });
  let ok = false;
  let stopWeb: (() => Promise<void>) | undefined;
  try {
    if (python) stopWeb = await startWeb();
    await removePreviousRun(b);
    const js = (f: string) => `node ${join(ROOT, "dist", "examples", "polynome2", f)}`;
    const searchExe = python ? `python3 ${join(ROOT, "examples", "polynome2", "search.py")}` : js("ambs.js");
    await ensureApp(b, "AMBS", searchExe, `asynchronous model-based search (polynome2 example${python ? ", in Python" : ""})`);
    await ensureApp(b, "polynome2.run", js("run.js"), "evaluates one polynome2 configuration");

    say(`\n# The seed's search job. --node-packing-count ${PACKING}: the search and its ${IN_FLIGHT} evaluations share one node`);
    say(`# (the evaluations inherit it), where the seed's 4-node allocation gave the search a node of its own.`);
    const jobOut = await balsam(["job", "--name", "test", "--application", "AMBS", "--workflow", WORKFLOW, "--args", SEARCH_ARGS, "--node-packing-count", String(PACKING), "--yes"], {
      capture: true,
    });
    const searchId = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/.exec(jobOut)?.[0];
    if (!searchId) throw new Error("could not read the new job's id from `balsam job`");

    say(`\n# A serial launcher runs the search; the search adds task0..task${MAX_EVALS - 1} (${IN_FLIGHT} in flight) and reads each`);
    say(`# result as the launcher announces it. Results as they arrive:`);
    let seen = 0;
    let bestSoFar = -Infinity;
    const unsubscribe = await b.queues.subscribe(FINISHED_CHANNEL, (msg) => {
      let f: { workflow?: string; name?: string; state?: string; result?: unknown };
      try {
        f = JSON.parse(msg) as typeof f;
      } catch {
        return; // not an announcement
      }
      if (f.workflow !== WORKFLOW || !f.name?.startsWith("task")) return;
      seen++;
      if (typeof f.result === "number") bestSoFar = Math.max(bestSoFar, f.result);
      say(`  ${String(seen).padStart(3)}/${MAX_EVALS} ${f.name.padEnd(7)} ${String(f.state).padEnd(12)} ${String(f.result).padStart(5)}   best so far ${bestSoFar}`);
    });
    const t0 = Date.now();
    let code: number;
    try {
      code = await runLauncher();
    } finally {
      await unsubscribe();
    }
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    if (code !== 0) throw new Error(`the launcher exited with ${code}`);

    await balsam(["ls", "--wf", WORKFLOW], { extraEnv: { BALSAM_LS_FIELDS: "num_nodes:args" }, prefix: "BALSAM_LS_FIELDS=num_nodes:args " });

    const search = await b.jobs.get(searchId);
    const counts = await b.jobs.filter({ workflow: WORKFLOW, name: "task" }).byState();
    if (search.state !== "JOB_FINISHED") throw new Error(`the search job ended ${search.state}: see ${search.workdir}`);
    const r = search.data.result as SearchResult | undefined;
    if (!r || typeof r.objective !== "number") throw new Error(`the search job recorded no result: see ${search.workdir}`);
    const random = simulate(randomSearch(Problem.dimensions, 0), Problem.objective, { maxEvals: r.evaluations, inFlight: IN_FLIGHT, seed: 0 });
    say(`\n${python ? "the Python search" : "search"} finished in ${secs} s: ${r.evaluations} evaluations, by state ${JSON.stringify(counts)}`);
    say(`best: ${r.job} ${encodeConfig(Problem, r.config)}  objective ${r.objective}  (optimum 0)`);
    say(`for comparison, random search with the same ${r.evaluations} evaluations (simulated, seed 0) reaches ${random?.objective}`);
    say(`the search's own output: ${join(search.workdir, "test.out")}`);
    ok = true;
  } finally {
    await stopWeb?.();
    await b.close();
    say(`\n# Clean up:`);
    if (local && !keepServers) {
      await balsam(["server", "--stop"]).catch((err: unknown) => say(`could not stop the servers: ${coerceError(err).message}`));
    } else if (local) {
      say(`#   BALSAM_DB_PATH=${quote([dir])} balsam server --stop   (the servers were kept running)`);
    }
    say(`#   rm -rf ${quote([dir])}   to delete the database (jobs, apps, working directories)`);
    if (!ok) process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo: ${coerceError(err).message}\n`);
  process.exitCode = 1;
});
