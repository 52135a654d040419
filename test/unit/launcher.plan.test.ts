import { test } from "node:test";
import assert from "node:assert/strict";
import { countFastFails, planAfterHandler, planAfterRun, planStart, stageOutFailed, type AfterRun, type RunFacts } from "../../services/launcher/plan.js";
import type { RunOutcome } from "../../services/launcher/runner.js";

const exit = (exitCode: number | null, more: Partial<RunOutcome> = {}): RunOutcome => ({ exitCode, signal: null, timedOut: false, ...more });
const job = { postErrorHandler: false, postTimeoutHandler: false, autoTimeoutRetry: false, fastFailRetries: 0 };
const base: RunFacts = { claimed: true, state: "RUNNING", killed: false, stopping: false, stopReason: "time limit reached", postprocess: "", job, runtimeSeconds: 30 };
const states = (a: AfterRun) => (a.kind === "record" ? a.path.map((s) => s.state).join(">") : a.kind === "handler" ? `handler in ${a.as}` : a.kind);

// Every outcome of a run, claimed (under a lease) unless said: what is recorded after it.
const afterRun: Array<[string, Partial<RunFacts>, string, string?]> = [
  ["finished", { outcome: exit(0) }, "RUN_DONE>POSTPROCESSED>JOB_FINISHED"],
  ["finished, with a postprocess", { outcome: exit(0), postprocess: "post.sh" }, "handler in RUN_DONE"],
  ["RUN_ERROR, no handler", { outcome: exit(2) }, "RUN_ERROR>FAILED", "exit code 2"],
  ["RUN_ERROR, handler asked for but no postprocess", { outcome: exit(2), job: { ...job, postErrorHandler: true } }, "RUN_ERROR>FAILED", "exit code 2; post_error_handler is set but the app has no postprocess script"],
  ["RUN_ERROR with handler", { outcome: exit(2), postprocess: "post.sh", job: { ...job, postErrorHandler: true } }, "handler in RUN_ERROR"],
  ["RUN_ERROR, could not start", { outcome: exit(null, { spawnError: "no such file" }) }, "RUN_ERROR>FAILED", "could not start: no such file"],
  ["RUN_TIMEOUT with retry", { stopping: true, outcome: exit(null, { signal: "SIGTERM" }), job: { ...job, autoTimeoutRetry: true } }, "RUN_TIMEOUT>RESTART_READY", "auto timeout retry"],
  ["RUN_TIMEOUT with handler", { stopping: true, outcome: exit(null, { signal: "SIGTERM" }), postprocess: "post.sh", job: { ...job, postTimeoutHandler: true, autoTimeoutRetry: true } }, "handler in RUN_TIMEOUT"],
  ["RUN_TIMEOUT, neither", { stopping: true, outcome: exit(null, { signal: "SIGTERM" }) }, "RUN_TIMEOUT>FAILED", "timed out; auto_timeout_retry is off"],
  ["stopped before its process started", { stopping: true, state: "STAGED_IN" }, "RESTART_READY", "launcher stopping: time limit reached"],
  ["killed", { killed: true, outcome: exit(null, { signal: "SIGTERM" }) }, "USER_KILLED", "killed by user"],
  ["killed before its process started", { killed: true, state: "PREPROCESSED" }, "USER_KILLED"],
  ["killed while stopping: the kill wins", { killed: true, stopping: true, outcome: exit(null, { signal: "SIGTERM" }) }, "USER_KILLED"],
  ["lost with the spawn helper", { outcome: exit(null, { lost: "its spawn helper died" }) }, "RESTART_READY", "its spawn helper died"],
  ["fast-fail retry", { runtimeSeconds: 1, outcome: exit(1), fastFailsSoFar: 0, job: { ...job, fastFailRetries: 3 } }, "RUN_ERROR>RESTART_READY", "failed fast: retry 1 of 3"],
  ["fast fail, retries used up", { runtimeSeconds: 1, outcome: exit(1), fastFailsSoFar: 3, job: { ...job, fastFailRetries: 3 } }, "RUN_ERROR>FAILED"],
  ["fast fail on SIGSEGV", { runtimeSeconds: 1, outcome: exit(null, { signal: "SIGSEGV" }), fastFailsSoFar: 1, job: { ...job, fastFailRetries: 3 } }, "RUN_ERROR>RESTART_READY", "failed fast: retry 2 of 3"],
  ["slow fail: no retry", { runtimeSeconds: 60, outcome: exit(1), fastFailsSoFar: 0, job: { ...job, fastFailRetries: 3 } }, "RUN_ERROR>FAILED"],
  ["fast fail with another exit code: no retry", { runtimeSeconds: 1, outcome: exit(3), fastFailsSoFar: 0, job: { ...job, fastFailRetries: 3 } }, "RUN_ERROR>FAILED"],
  ["ahead of its claim: finished", { claimed: false, state: "READY", outcome: exit(0) }, "RUN_DONE>POSTPROCESSED>JOB_FINISHED"],
  ["ahead of its claim: RUN_ERROR", { claimed: false, state: "READY", outcome: exit(2) }, "RUN_ERROR>FAILED"],
  ["ahead of its claim: killed (kill recorded it)", { claimed: false, state: "READY", killed: true, outcome: exit(null, { signal: "SIGTERM" }) }, "nothing"],
  ["ahead of its claim: stopping", { claimed: false, state: "READY", stopping: true, outcome: exit(null, { signal: "SIGTERM" }) }, "give-back"],
  ["ahead of its claim: lost", { claimed: false, state: "READY", outcome: exit(null, { lost: "its spawn helper died" }) }, "give-back"],
];

for (const [name, facts, want, lastMessage] of afterRun) {
  test(`after a run: ${name} → ${want}`, () => {
    const plan = planAfterRun({ ...base, ...facts });
    assert.equal(states(plan), want);
    if (lastMessage !== undefined && plan.kind === "record") assert.equal(plan.path[plan.path.length - 1]!.message, lastMessage);
  });
}

test("after a run: a RUN_ERROR's message carries the output's last lines; the run's fields go with the write", () => {
  const plan = planAfterRun({ ...base, outcome: exit(2), outputTail: "Traceback: boom" });
  assert.deepEqual(plan, { kind: "record", path: [{ state: "RUN_ERROR", message: "exit code 2; output ends: Traceback: boom" }, { state: "FAILED", message: "exit code 2" }], set: { exitCode: 2, runtimeSeconds: 30 } });
  const done = planAfterRun({ ...base, outcome: exit(0), result: { y: 1 } });
  assert.deepEqual(done.kind === "record" && [done.set, done.stageOut], [{ exitCode: 0, runtimeSeconds: 30, "data.result": { y: 1 } }, true]);
});

// After a postprocess or handler: [in state, handler's exit, what it left, recorded, last message].
const afterHandler: Array<[string, "RUN_DONE" | "RUN_ERROR" | "RUN_TIMEOUT", RunOutcome, { released: boolean; state: "RUN_DONE" | "RUN_ERROR" | "RUN_TIMEOUT" | "POSTPROCESSED" | "RUNNING" } | undefined, string, string?]> = [
  ["postprocess ok", "RUN_DONE", exit(0), { released: false, state: "RUN_DONE" }, "POSTPROCESSED>JOB_FINISHED"],
  ["postprocess failed", "RUN_DONE", exit(1), undefined, "FAILED", "postprocess exit code 1"],
  ["error handler failed", "RUN_ERROR", exit(1), undefined, "FAILED", "error handler exit code 1"],
  ["timeout handler failed", "RUN_TIMEOUT", exit(null, { timedOut: true }), undefined, "FAILED", "timeout handler timed out"],
  ["error handler exited 0, left RUN_ERROR (0.x)", "RUN_ERROR", exit(0), { released: false, state: "RUN_ERROR" }, "FAILED", "Error handling didn't fix job state: marking FAILED"],
  ["timeout handler exited 0, left RUN_TIMEOUT (0.x)", "RUN_TIMEOUT", exit(0), { released: false, state: "RUN_TIMEOUT" }, "FAILED", "Timeout handling didn't change job state: marking FAILED"],
  ["error handler set POSTPROCESSED", "RUN_ERROR", exit(0), { released: true, state: "POSTPROCESSED" }, "JOB_FINISHED"],
  ["handler set a state no launcher goes on from", "RUN_ERROR", exit(0), { released: true, state: "RUNNING" }, "FAILED", "its postprocess left it RUNNING, from which no launcher goes on"],
];

for (const [name, as, handler, left, want, lastMessage] of afterHandler) {
  test(`after a handler: ${name} → ${want}`, () => {
    const plan = planAfterHandler(as, handler, left);
    assert.equal(plan.path.map((s) => s.state).join(">"), want);
    if (lastMessage !== undefined) assert.equal(plan.path[plan.path.length - 1]!.message, lastMessage);
    assert.equal(Boolean(plan.stageOut), want.endsWith("JOB_FINISHED"));
  });
}

test("a failed stage-out keeps the steps before POSTPROCESSED, then FAILED", () => {
  assert.deepEqual(stageOutFailed([{ state: "STAGED_IN" }, { state: "RUN_DONE" }, { state: "POSTPROCESSED" }, { state: "JOB_FINISHED" }], "no space").map((s) => s.state), ["STAGED_IN", "RUN_DONE", "FAILED"]);
  assert.deepEqual(stageOutFailed([{ state: "JOB_FINISHED" }], "no space"), [{ state: "FAILED", message: "stage-out failed: no space" }]);
});

test("fast-fail retries are counted from the history", () => {
  const h = (state: "RESTART_READY" | "RUN_ERROR", message: string) => ({ state, message });
  assert.equal(countFastFails([h("RESTART_READY", "failed fast: retry 1 of 3"), h("RUN_ERROR", "exit code 1"), h("RESTART_READY", "auto timeout retry")]), 1);
});

// The path to the run: [name, job, scripts, claimAfterMs, states, runs ahead].
const start = { state: "READY" as const, stageInUrl: "", parents: [] as string[], inputFiles: "*", stateHistory: [] as Array<{ state: "PREPROCESSED"; message: string; at: Date }> };
const starts: Array<[string, Partial<typeof start>, { pre?: string; post?: string; app?: boolean }, number, string, boolean]> = [
  ["no scripts: fast-forward to RUNNING, ahead of its claim", {}, {}, 1000, "STAGED_IN>PREPROCESSED>RUNNING", true],
  ["claimAfterMs 0: claimed first", {}, {}, 0, "STAGED_IN>PREPROCESSED>RUNNING", false],
  ["a postprocess: claimed first (0.x scripts set their job's state)", {}, { post: "post.sh" }, 1000, "STAGED_IN>PREPROCESSED>RUNNING", false],
  ["a preprocess: stops at STAGED_IN", {}, { pre: "pre.sh" }, 1000, "STAGED_IN", false],
  ["a stage-in URL: stops at STAGED_IN", { stageInUrl: "local:/data" }, {}, 1000, "STAGED_IN", false],
  ["parents with input files: stops at STAGED_IN", { parents: ["p"] }, {}, 1000, "STAGED_IN", false],
  ["no app: claimed, to be failed", {}, { app: false }, 1000, "STAGED_IN>PREPROCESSED>RUNNING", false],
  ["a restart after its preprocess ran: straight to RUNNING, ahead", { state: "RESTART_READY" as never, stateHistory: [{ state: "PREPROCESSED", message: "", at: new Date(0) }] }, { pre: "pre.sh" }, 1000, "RUNNING", true],
];

for (const [name, j, s, claimAfterMs, want, ahead] of starts) {
  test(`start: ${name}`, () => {
    const plan = planStart({ ...start, ...j }, { appFound: s.app ?? true, preprocess: s.pre ?? "", postprocess: s.post ?? "", claimAfterMs, owner: "me" });
    assert.equal(plan.steps.map((x) => x.state).join(">"), want);
    assert.equal(plan.steps[0]!.message, "launcher me");
    assert.equal(plan.runAhead, ahead);
  });
}
