import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_JOB_NAME_LENGTH, checkAppForLaunch, checkJobForLaunch, jobDirName, splitCommandLine } from "../../libs/models/index.js";
import { UsageError } from "../../libs/errors/index.js";

test("a command line splits into words as a shell would, without running one", () => {
  assert.deepEqual(splitCommandLine(`run.py --note "a b" 'c d' x\\ y *.txt $HOME`, "args"), ["run.py", "--note", "a b", "c d", "x y", "*.txt", "$HOME"]);
  assert.deepEqual(splitCommandLine(`'{"e0": -5, "e1": 2}'`, "args"), ['{"e0": -5, "e1": 2}']);
  assert.deepEqual(splitCommandLine(`"say \\"hi\\"" 'it''s'`, "args"), ['say "hi"', "its"]);
  assert.deepEqual(splitCommandLine("   ", "args"), []);
});

test("shell syntax is refused with a UsageError naming the field and the syntax", () => {
  const cases: Array<[string, string]> = [
    ["echo a | cat", "|"],
    ["echo a; echo b", ";"],
    ["a && b", "&&"],
    ["a > out", ">"],
    ["a 2>&1", ">&"],
    ["a $(id)", "("],
    ["a #note", "#note"],
  ];
  for (const [line, syntax] of cases) {
    assert.throws(
      () => splitCommandLine(line, "postprocess"),
      (e: unknown) => e instanceof UsageError && e.message === `postprocess '${line}' contains shell syntax ('${syntax}'): the launcher runs it without a shell` && /script/.test(e.hint ?? ""),
      line,
    );
  }
});

test("an unterminated quote or a lone trailing backslash is refused, not silently dropped", () => {
  assert.throws(() => splitCommandLine('--x "unbalanced', "args"), /^UsageError: args '--x "unbalanced' has an unterminated double quote$/);
  assert.throws(() => splitCommandLine("'{\"e0\": 1}", "args"), /has an unterminated single quote/);
  assert.throws(() => splitCommandLine('"a\\"', "args"), /has an unterminated double quote/);
  assert.throws(() => splitCommandLine("a \\", "args"), /ends with a lone backslash/);
  assert.deepEqual(splitCommandLine('"a\\\\"', "args"), ["a\\"]);
  assert.deepEqual(splitCommandLine(`"it's"`, "args"), ["it's"]);
});

test("a name whose working directory name would pass 255 bytes is refused", () => {
  const id = "0123456789abcdef";
  assert.equal(jobDirName({ _id: id, name: "n".repeat(MAX_JOB_NAME_LENGTH) }).length, 255);
  assert.throws(() => jobDirName({ _id: id, name: "n".repeat(MAX_JOB_NAME_LENGTH + 1) }), /job name is 247 characters long; at most 246 fit/);
  // Characters outside A-Za-z0-9_.- become one '_' each, so the limit counts characters as stored.
  assert.equal(jobDirName({ _id: id, name: "é/x" }), "__x_01234567");
});

test("app and job checks cover every field the launcher splits", () => {
  assert.throws(() => checkAppForLaunch({ executable: "a | b" }), /^UsageError: executable/);
  assert.throws(() => checkAppForLaunch({ executable: "a", preprocess: "x;y" }), /^UsageError: preprocess/);
  assert.throws(() => checkAppForLaunch({ executable: "a", postprocess: "x|y" }), /^UsageError: postprocess/);
  assert.throws(() => checkJobForLaunch({ args: "'x" }), /^UsageError: args/);
  assert.throws(() => checkJobForLaunch({ mpiFlags: "-x A;B" }), /^UsageError: mpi_flags/);
  assert.throws(() => checkJobForLaunch({ name: "n".repeat(300) }), /job name is 300/);
  checkJobForLaunch({ name: "ok", args: "--evaluator balsam", mpiFlags: "--bind-to core" });
});
