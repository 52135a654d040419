import { test } from "node:test";
import assert from "node:assert/strict";
import { jobField, parseFieldValue, parseEnvAssignments, parseEnvList, JOB_FIELDS } from "../../libs/models/index.js";

test("field values are parsed by type: false is false", () => {
  assert.equal(parseFieldValue(jobField("auto_timeout_retry")!, "false"), false);
  assert.equal(parseFieldValue(jobField("post_error_handler")!, "True"), true);
  assert.equal(parseFieldValue(jobField("num_nodes")!, "4"), 4);
  assert.throws(() => parseFieldValue(jobField("num_nodes")!, "4.5"), /whole number/);
  assert.throws(() => parseFieldValue(jobField("auto_timeout_retry")!, "maybe"), /true or false/);
  assert.deepEqual(parseFieldValue(jobField("data")!, '{"a":1}'), { a: 1 });
});

test("env lists", () => {
  assert.deepEqual(parseEnvList(["A=1", "B=x=y"]), { A: "1", B: "x=y" });
  assert.throws(() => parseEnvList(["NOEQUALS"]), /VAR=VALUE/);
  assert.throws(() => parseEnvList(["1A=x"]), /not a valid/);
});

test("one env rule for `job --env` and `modify environ_vars`: ',' or ':' splits only before VAR=", () => {
  const env = jobField("environ_vars")!;
  assert.deepEqual(parseEnvAssignments(["A=1,B=2"]), { A: "1", B: "2" });
  assert.deepEqual(parseEnvAssignments(["A=1", "B=2"]), { A: "1", B: "2" });
  assert.deepEqual(parseEnvAssignments(["PATH=/usr/bin:/bin"]), { PATH: "/usr/bin:/bin" });
  assert.deepEqual(parseEnvAssignments(["CUDA_VISIBLE_DEVICES=0,1,2", "OMP_NUM_THREADS=4"]), { CUDA_VISIBLE_DEVICES: "0,1,2", OMP_NUM_THREADS: "4" });
  assert.deepEqual(parseFieldValue(env, "PATH=/usr/bin:/bin"), { PATH: "/usr/bin:/bin" });
  assert.deepEqual(parseFieldValue(env, "A=1,B=2"), { A: "1", B: "2" });
  assert.deepEqual(parseFieldValue(env, "X=1:Y=2"), { X: "1", Y: "2" }); // Balsam 0.x's stored form
  assert.deepEqual(parseFieldValue(env, "PATH=/a:/b:LD_LIBRARY_PATH=/c:/d"), { PATH: "/a:/b", LD_LIBRARY_PATH: "/c:/d" });
  assert.deepEqual(parseFieldValue(env, ""), {});
  assert.throws(() => parseFieldValue(env, "PATH"), /environment entry 'PATH' must look like VAR=VALUE/);
});

test("int fields refuse what a number cannot hold exactly", () => {
  assert.throws(() => parseFieldValue(jobField("num_nodes")!, "99999999999999999999"), /num_nodes is too large: 99999999999999999999/);
  assert.equal(parseFieldValue(jobField("num_nodes")!, "9007199254740991"), 9007199254740991);
});

test("every snake_case name is unique and maps to one key", () => {
  const names = JOB_FIELDS.map((f) => f.snake);
  assert.equal(new Set(names).size, names.length);
});
