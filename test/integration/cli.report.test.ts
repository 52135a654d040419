import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { useCliFixture } from "../support/fixture.js";
import type { Job, JobState } from "../../libs/client/index.js";
import { buildJob, insertJobs } from "../../libs/store/index.js";

/**
 * `balsam report utilization|throughput|errors` on a database whose state
 * histories are written here by hand, so each series can be computed by
 * hand too (the comments below do it). The built `balsam`, as a subprocess.
 */
const f = useCliFixture("report", { web: true });
const CLIENT = resolve(fileURLToPath(import.meta.url), "../../../../clients/python");
const PYTHON = process.env.BALSAM_TEST_PYTHON ?? "python3";
/** The PNG a reviewer can look at, under the repository's git-ignored test-output/. */
const OUT = resolve(fileURLToPath(import.meta.url), "../../../../test-output/report");

const T0 = Date.parse("2026-01-02T03:00:00.000Z");
const at = (s: number) => new Date(T0 + s * 1000);
const iso = (s: number) => at(s).toISOString();

/** A job of tag camp=x (or `camp`) whose history is `steps` ([second, state, message?]). */
function job(name: string, steps: Array<[number, JobState, string?]>, runtimeSeconds: number | null = null, camp = "x"): Job {
  const j = buildJob({ name, workflow: "REP", application: "noop", tags: { camp } }, at(0));
  j.stateHistory = [{ at: at(0), state: "CREATED", message: "" }, ...steps.map(([s, state, message]) => ({ at: at(s), state, message: message ?? "" }))];
  j.state = steps[steps.length - 1]![1];
  j.runtimeSeconds = runtimeSeconds;
  j.updatedAt = j.stateHistory[j.stateHistory.length - 1]!.at;
  return j;
}

const DONE = (run: number, end: number): Array<[number, JobState]> => [
  [run, "STAGED_IN"], [run, "PREPROCESSED"], [run, "RUNNING"], [end, "RUN_DONE"], [end, "POSTPROCESSED"], [end, "JOB_FINISHED"],
];

const ok = f.ok;

async function csv(args: string[]): Promise<string[]> {
  return (await ok(["report", ...args, "--csv", "-"])).stdout.trimEnd().split("\n");
}

describe("balsam report", () => {
  before(async () => {
    await f.balsam.apps.add({ name: "noop", executable: "/bin/true" });
    const jobs = [
      job("A", [[0, "READY"], ...DONE(10, 40)], 30),
      job("B", [[0, "READY"], [20, "STAGED_IN"], [20, "PREPROCESSED"], [20, "RUNNING"], [50, "RUN_ERROR", "exit code 1; output ends: Traceback (most recent call last): | ValueError: bad x"], [50, "FAILED", "exit code 1"]], 30),
      // Ran ahead of its claim: recorded in one write at 60, RUNNING included; its runtime puts the run at [45, 60].
      job("C", [[0, "READY"], ...DONE(60, 60)], 15),
      job("D", [[0, "READY"], [30, "STAGED_IN"], [30, "PREPROCESSED"], [30, "RUNNING"]]),
      // Finished, rerun, finished again: two runs, two finishes.
      job("E", [[0, "READY"], ...DONE(5, 15), [70, "READY", "rerun by user"], ...DONE(80, 90)], 10),
      job("F", [[0, "READY"], [25, "STAGED_IN"], [25, "PREPROCESSED"], [25, "RUNNING"], [35, "RUN_ERROR", "exit code 1; output ends: ValueError: bad x"], [35, "FAILED", "exit code 1"]], 10),
      job("G", [[0, "READY"], [55, "FAILED", "stage-in failed: no such file"]]),
      job("H", [[0, "READY"], [12, "STAGED_IN"], [12, "PREPROCESSED"], [12, "RUNNING"], [22, "USER_KILLED", "killed by user"]]),
      // Another campaign: left out by --tag camp=x.
      job("I", [[0, "READY"], ...DONE(0, 100)], 100, "y"),
      job("J", [[0, "READY"], [1, "FAILED", "other campaign"]], null, "y"),
    ];
    await insertJobs(f.balsam.store, jobs);
  });

  test("utilization: jobs running over time, as computed by hand from the histories", async () => {
    // Runs: A 10–40, B 20–50, C 45–60, D 30–, E 5–15 and 80–90, F 25–35, H 12–22 (killed).
    const want = [[5, 1], [10, 2], [12, 3], [15, 2], [20, 3], [22, 2], [25, 3], [30, 4], [35, 3], [40, 2], [45, 3], [50, 2], [60, 1], [80, 2], [90, 1]];
    assert.deepEqual(await csv(["utilization", "--tag", "camp=x"]), ["time,running", ...want.map(([s, v]) => `${iso(s!)},${v}`)]);
    // From 33: the level then (4: A, B, D, F running), then what follows.
    const since = [[33, 4], [35, 3], [40, 2], [45, 3], [50, 2], [60, 1], [80, 2], [90, 1]];
    assert.deepEqual(await csv(["utilization", "--tag", "camp=x", "--since", iso(33)]), ["time,running", ...since.map(([s, v]) => `${iso(s!)},${v}`)]);
    // Without the tag, I (0–100) runs too.
    const all = await csv(["utilization", "--wf-exact", "REP"]);
    assert.equal(all[1], `${iso(0)},1`);
    assert.equal(all[all.length - 1], `${iso(100)},1`);
  });

  test("throughput: jobs finished, cumulatively (a rerun job that finishes again counts again)", async () => {
    assert.deepEqual(await csv(["throughput", "--tag", "camp=x"]), ["time,finished", `${iso(15)},1`, `${iso(40)},2`, `${iso(60)},3`, `${iso(90)},4`]);
    assert.deepEqual(await csv(["throughput", "--tag", "camp=x", "--since", iso(33)]), ["time,finished", `${iso(40)},1`, `${iso(60)},2`, `${iso(90)},3`]);
  });

  test("errors: failed jobs grouped by their last error line, most frequent first", async () => {
    const lines = await csv(["errors", "--tag", "camp=x"]);
    assert.equal(lines[0], "error,count,example_job_ids");
    assert.deepEqual(lines.slice(1).map((l) => l.split(",").slice(0, 2).join(",")), ["ValueError: bad x,2", "stage-in failed: no such file,1"]);
    // Since 40: F failed at 35.
    assert.deepEqual((await csv(["errors", "--tag", "camp=x", "--since", iso(40)])).slice(1).map((l) => l.split(",").slice(0, 2).join(",")), ["ValueError: bad x,1", "stage-in failed: no such file,1"]);
    const table = await ok(["report", "errors", "--tag", "camp=x"]);
    assert.match(table.stdout, /^3 failed job\(s\), 2 distinct last error line\(s\):\n2 {2}ValueError: bad x {2}\(e\.g\. /);
  });

  test("on a terminal: a compact chart; --png: a real image of sane size (saved under test-output/report)", async () => {
    const chart = await ok(["report", "utilization", "--tag", "camp=x"]);
    assert.match(chart.stdout, /^jobs running: peak 4 at 2026-01-02T03:00:30\.000Z, 1 at the end; 85 s from 2026-01-02T03:00:05\.000Z\n/);
    assert.match(chart.stdout, /[┼┤]/, "asciichart's axis");
    assert.ok(chart.stdout.split("\n").length <= 14, "compact");
    mkdirSync(OUT, { recursive: true });
    for (const kind of ["utilization", "throughput", "errors"]) {
      const png = join(OUT, `${kind}.png`);
      await ok(["report", kind, "--tag", "camp=x", "--png", png]);
      const b = readFileSync(png);
      assert.deepEqual([...b.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "PNG signature");
      assert.equal(b.subarray(12, 16).toString("ascii"), "IHDR");
      const width = b.readUInt32BE(16);
      const height = b.readUInt32BE(20);
      assert.ok(width >= 400 && width <= 2000 && height >= 100 && height <= 1500, `${kind}: ${width}×${height}`);
      const size = statSync(png).size;
      assert.ok(size > 5_000 && size < 500_000, `${kind}: ${size} bytes`);
    }
  });

  test("the Python client's utilization_report/throughput_report/error_report return the CLI's --csv series; tags there too", async () => {
    const script = [
      "import json, sys",
      "from datetime import datetime, timezone",
      "import balsam",
      "from balsam import Balsam, utilization_report, throughput_report, error_report",
      "b = Balsam()",
      "since = datetime.fromisoformat(sys.argv[1].replace('Z', '+00:00'))",
      "iso = lambda ts: [t.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.') + f'{t.microsecond // 1000:03d}Z' for t in ts]",
      "out = {}",
      "for name, fn in [('utilization', utilization_report), ('throughput', throughput_report)]:",
      "    t, v = fn(tags={'camp': 'x'})",
      "    out[name] = [iso(t), v]",
      "    t, v = getattr(b, name + '_report')(since=since, tags={'camp': 'x'})",
      "    out[name + '_since'] = [iso(t), v]",
      "out['errors'] = list(error_report(tags={'camp': 'x'}))",
      "j = b.jobs.add(name='tagged', workflow='PYTAG', application='noop', tags={'camp': 'z', 'gen': '1'})",
      "out['tags'] = j.tags",
      "out['selected'] = [x.name for x in b.jobs.filter(tags={'camp': 'z'})] + [x.name for x in b.jobs.filter(tags={'camp': 'z', 'gen': '2'})]",
      "print(json.dumps(out))",
    ].join("\n");
    const r = spawnSync(PYTHON, ["-c", script, iso(33)], { env: { ...process.env, ...f.db.env, PYTHONPATH: CLIENT, PYTHONDONTWRITEBYTECODE: "1" }, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, unknown>;
    const fromCsv = (lines: string[]) => [lines.slice(1).map((l) => l.split(",")[0]), lines.slice(1).map((l) => Number(l.split(",")[1]))];
    assert.deepEqual(got.utilization, fromCsv(await csv(["utilization", "--tag", "camp=x"])));
    assert.deepEqual(got.utilization_since, fromCsv(await csv(["utilization", "--tag", "camp=x", "--since", iso(33)])));
    assert.deepEqual(got.throughput, fromCsv(await csv(["throughput", "--tag", "camp=x"])));
    assert.deepEqual(got.throughput_since, fromCsv(await csv(["throughput", "--tag", "camp=x", "--since", iso(33)])));
    assert.deepEqual(got.errors, fromCsv(await csv(["errors", "--tag", "camp=x"])));
    assert.deepEqual(got.tags, { camp: "z", gen: "1" });
    assert.deepEqual(got.selected, ["tagged"]);
  });

  test("bad input: one line, exit 2, before any server is asked", async () => {
    for (const [args, want] of [
      [["report", "speed"], /^balsam: no report 'speed': use utilization, throughput, errors\n$/],
      [["report", "utilization", "--since", "yesterday"], /^balsam: --since takes a time \(2026-12-04T10:00:00Z\) or an age \(90s, 30m, 2h, 1d\), not 'yesterday'\n$/],
      [["report", "utilization", "--tag", "camp"], /^balsam: --tag takes KEY=VALUE, not 'camp'\n$/],
    ] as Array<[string[], RegExp]>) {
      const r = await f.db.run(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, want);
    }
  });
});
