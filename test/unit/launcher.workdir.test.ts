import { test } from "node:test";
import assert from "node:assert/strict";
import { workdirFor } from "../../libs/client/workdir.js";

const job = (workflow: string, name = "task") => ({ _id: "0123456789abcdef", workflow, name });

test("a job's working directory is <db>/data/<workflow>/<name>_<id prefix>", () => {
  assert.equal(workdirFor("/db", job("TEST", "task1")), "/db/data/TEST/task1_01234567");
  assert.equal(workdirFor("/db", job("TEST", "../../etc")), "/db/data/TEST/.._.._etc_01234567");
});

test("workflows that would leave the workflow directories are refused, even if stored", () => {
  for (const wf of ["..", ".", "servers", "a/b", "../x", ""]) {
    assert.throws(() => workdirFor("/db", job(wf)), /does not name a directory under \/db\/data/, wf);
  }
});
