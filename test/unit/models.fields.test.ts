import { test } from "node:test";
import assert from "node:assert/strict";
import { jobField, parseFieldValue, parseEnvList, JOB_FIELDS } from "../../libs/models/index.js";

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

test("every snake_case name is unique and maps to one key", () => {
  const names = JOB_FIELDS.map((f) => f.snake);
  assert.equal(new Set(names).size, names.length);
});
