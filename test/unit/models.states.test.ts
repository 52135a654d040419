import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  JOB_STATES,
  FINAL_STATES,
  allowedTransitions,
  canTransition,
  canTransitionPath,
  isFinal,
  isRunnable,
  type JobState,
} from "../../libs/models/index.js";

// The table as DESIGN §4 draws it; every pair here must be allowed.
const ALLOWED: Array<[JobState, JobState]> = [
  ["CREATED", "AWAITING_PARENTS"], ["CREATED", "READY"],
  ["AWAITING_PARENTS", "READY"], ["AWAITING_PARENTS", "FAILED"],
  ["READY", "STAGED_IN"], ["READY", "AWAITING_PARENTS"],
  ["STAGED_IN", "PREPROCESSED"], ["PREPROCESSED", "RUNNING"],
  ["RUNNING", "RUN_DONE"], ["RUNNING", "RUN_ERROR"], ["RUNNING", "RUN_TIMEOUT"], ["RUNNING", "RESTART_READY"],
  ["RUN_DONE", "POSTPROCESSED"], ["POSTPROCESSED", "JOB_FINISHED"],
  ["RUN_TIMEOUT", "RESTART_READY"], ["RUN_TIMEOUT", "POSTPROCESSED"], ["RUN_TIMEOUT", "FAILED"],
  ["RUN_ERROR", "POSTPROCESSED"], ["RUN_ERROR", "FAILED"],
  ["RESTART_READY", "RUNNING"], ["RESTART_READY", "STAGED_IN"],
];

describe("job state transitions", () => {
  test("every transition of the design is allowed", () => {
    for (const [a, b] of ALLOWED) assert.ok(canTransition(a, b), `${a} → ${b}`);
  });

  test("every non-final state may be killed; final states go only back (a rerun)", () => {
    for (const s of JOB_STATES) {
      if (isFinal(s)) assert.deepEqual([...allowedTransitions(s)].sort(), ["AWAITING_PARENTS", "READY", "RESTART_READY"], s);
      else assert.ok(canTransition(s, "USER_KILLED"), `${s} → USER_KILLED`);
    }
  });

  test("a sample of forbidden transitions is refused", () => {
    const forbidden: Array<[JobState, JobState]> = [
      ["CREATED", "RUNNING"], ["READY", "JOB_FINISHED"], ["READY", "RUNNING"], ["AWAITING_PARENTS", "RUNNING"],
      ["RUN_DONE", "JOB_FINISHED"], ["JOB_FINISHED", "RUNNING"], ["FAILED", "STAGED_IN"], ["FAILED", "CREATED"],
      ["USER_KILLED", "JOB_FINISHED"], ["RUNNING", "READY"], ["RUN_DONE", "RUNNING"], ["POSTPROCESSED", "RUNNING"],
    ];
    for (const [a, b] of forbidden) assert.equal(canTransition(a, b), false, `${a} → ${b}`);
  });

  test("fast-forward paths are checked step by step", () => {
    assert.ok(canTransitionPath("READY", ["STAGED_IN", "PREPROCESSED", "RUNNING"]));
    assert.ok(canTransitionPath("RUNNING", ["RUN_DONE", "POSTPROCESSED", "JOB_FINISHED"]));
    assert.equal(canTransitionPath("READY", ["STAGED_IN", "RUNNING"]), false);
  });

  test("state groups", () => {
    assert.deepEqual([...FINAL_STATES].sort(), ["FAILED", "JOB_FINISHED", "USER_KILLED"]);
    assert.ok(isRunnable("READY") && isRunnable("RESTART_READY") && !isRunnable("RUNNING"));
  });
});
