import { test } from "node:test";
import assert from "node:assert/strict";
import { UsageError } from "../../libs/errors/index.js";
import {
  buildReport,
  hasTags,
  lastErrorLine,
  parseTags,
  runIntervals,
  formatTags,
  tagsQuery,
  type ReportDoc,
  type StateHistoryEntry,
  type JobState,
} from "../../libs/models/index.js";
import { TagFilter } from "../../services/launcher/tag-filter.js";
import { resample } from "../../cli/report-render.js";

const h = (steps: Array<[number, JobState, string?]>): StateHistoryEntry[] => steps.map(([s, state, message]) => ({ at: new Date(s * 1000), state, message: message ?? "" }));

test("tags: KEY=VALUE words, a value may hold '=', bad words are usage errors naming the word", () => {
  assert.deepEqual(parseTags(["run=B", "note=a=b", "k="]), { run: "B", note: "a=b", k: "" });
  assert.equal(parseTags([]), undefined);
  for (const [w, re] of [
    ["run", /--tag takes KEY=VALUE, not 'run'/],
    ["=x", /not '=x'/],
    ["a b=1", /tag key 'a b'/],
    ["a.b=1", /tag key 'a\.b'/],
    ["a-b=1", /tag key 'a-b' must be letters, digits and '_'/],
    ["3d=1", /tag key '3d'/],
    ["$x=1", /tag key '\$x'/],
    [`k=${"v".repeat(257)}`, /at most 256/],
  ] as Array<[string, RegExp]>) {
    assert.throws(() => parseTags([w]), (e: unknown) => e instanceof UsageError && re.test((e as Error).message), w);
  }
  assert.throws(() => parseTags(["k=1", "k=2"]), /given twice/);
  assert.deepEqual(parseTags(["k=1", "k=1"]), { k: "1" });
});

test("tags: one tags.K equality per tag; matching needs every wanted tag; shown sorted by key", () => {
  assert.deepEqual(tagsQuery({ run: "B", gen: "3" }), { "tags.run": "B", "tags.gen": "3" });
  assert.deepEqual(tagsQuery(undefined), {});
  assert.equal(formatTags({ run: "B", gen: "3" }), "gen=3,run=B");
  assert.ok(hasTags({ run: "B", gen: "3" }, { gen: "3" }));
  assert.ok(!hasTags({ run: "B" }, { run: "B", gen: "3" }));
  assert.ok(!hasTags(undefined, { run: "B" }));
  assert.ok(hasTags(undefined, undefined));
});

test("launcher --tag: accepts matching jobs; each miss in a row pauses a little longer, at most 1 s; a hit resets", () => {
  const f = new TagFilter({ run: "B" });
  assert.ok(f.active);
  assert.ok(!f.accepts({ tags: { run: "C" } }));
  assert.deepEqual([f.missPauseMs(), f.missPauseMs(), f.missPauseMs()], [0, 10, 20]);
  for (let i = 0; i < 200; i++) f.missPauseMs();
  assert.equal(f.missPauseMs(), 1000);
  assert.ok(f.accepts({ tags: { run: "B", x: "y" } }));
  assert.equal(f.missPauseMs(), 0);
  assert.deepEqual(f.query(), { "tags.run": "B" });
  const none = new TagFilter(undefined);
  assert.ok(!none.active && none.accepts({ tags: {} as Record<string, string> }));
  assert.deepEqual(none.query(), {});
});

test("runs: RUNNING to the next other state; one-write runs take their runtime; an open run has no end", () => {
  const doc = (steps: Array<[number, JobState, string?]>, runtimeSeconds: number | null = null): ReportDoc => ({ _id: "j", state: steps[steps.length - 1]![1], stateHistory: h(steps), runtimeSeconds });
  assert.deepEqual(runIntervals(doc([[0, "READY"], [10, "RUNNING"], [40, "RUN_DONE"]])), [{ start: 10_000, end: 40_000 }]);
  assert.deepEqual(runIntervals(doc([[60, "RUNNING"], [60, "RUN_DONE"]], 15)), [{ start: 45_000, end: 60_000 }]);
  assert.deepEqual(runIntervals(doc([[60, "RUNNING"], [60, "RUN_DONE"]])), [{ start: 60_000, end: 60_000 }]);
  assert.deepEqual(runIntervals(doc([[5, "RUNNING"], [9, "USER_KILLED"], [20, "RUNNING"]])), [{ start: 5000, end: 9000 }, { start: 20_000 }]);
  assert.deepEqual(runIntervals(doc([[5, "RUNNING"], [6, "RUNNING"], [9, "RUN_TIMEOUT"]])), [{ start: 5000, end: 9000 }]);
});

test("last error line: the run's output tail's last line, else the failure's message, never an earlier attempt's", () => {
  assert.equal(lastErrorLine(h([[1, "RUNNING"], [2, "RUN_ERROR", "exit code 1; output ends: a | b | KeyError: 'x'"], [2, "FAILED", "exit code 1"]])), "KeyError: 'x'");
  assert.equal(lastErrorLine(h([[1, "RUNNING"], [2, "RUN_ERROR", "exit code 2"], [2, "FAILED", "exit code 2"]])), "exit code 2");
  assert.equal(lastErrorLine(h([[1, "RUNNING"], [2, "RUN_ERROR", "exit code 1; output ends: old"], [3, "RESTART_READY"], [4, "RUNNING"], [5, "FAILED", "stage-out failed: x"]])), "stage-out failed: x");
  assert.equal(lastErrorLine(h([[1, "FAILED", "parent\\nfailed  twice"]])), "parent\\nfailed twice");
  assert.equal(lastErrorLine(h([[1, "FAILED"]])), "(no message)");
});

test("reports: steps merge events at one time; --since keeps the level then; throughput counts from since", () => {
  const docs: ReportDoc[] = [
    { _id: "a", state: "JOB_FINISHED", stateHistory: h([[10, "RUNNING"], [20, "RUN_DONE"], [20, "JOB_FINISHED"]]) },
    { _id: "b", state: "JOB_FINISHED", stateHistory: h([[10, "RUNNING"], [30, "RUN_DONE"], [30, "JOB_FINISHED"]]) },
    { _id: "c", state: "RUNNING", stateHistory: h([[20, "RUNNING"]]) },
  ];
  const u = buildReport("utilization", docs);
  assert.ok(u.kind === "utilization");
  assert.deepEqual([u.series.times.map((t) => t.getTime() / 1000), u.series.values], [[10, 20, 30], [2, 2, 1]]);
  const us = buildReport("utilization", docs, new Date(25_000));
  assert.ok(us.kind === "utilization");
  assert.deepEqual([us.series.times.map((t) => t.getTime() / 1000), us.series.values], [[25, 30], [2, 1]]);
  const t = buildReport("throughput", docs, new Date(25_000));
  assert.ok(t.kind === "throughput");
  assert.deepEqual([t.series.times.map((x) => x.getTime() / 1000), t.series.values], [[30], [1]]);
  assert.deepEqual(buildReport("errors", docs), { kind: "errors", errors: [] });
});

test("the terminal chart's resampling keeps a burst shorter than a column", () => {
  const s = { times: [0, 1, 2, 100].map((x) => new Date(x * 1000)), values: [1, 5, 1, 0] };
  const cols = resample(s, 10);
  assert.equal(cols.length, 10);
  assert.equal(cols[0], 1);
  assert.equal(Math.max(...cols), 5, "the 1-second peak shows");
  assert.equal(cols[9], 1, "the last column holds the most reached in its slice");
  assert.deepEqual(resample({ times: [], values: [] }, 10), []);
});
