import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BALSAM_BIN } from "../support/cli.js";
import { useCliFixture } from "../support/fixture.js";

/**
 * The Python client (clients/python) against real servers: `balsam web` on a
 * database of the test servers, real launchers started by the Python tests
 * themselves, and Python's own unittest suite (`python3 -m unittest
 * discover`), whose summary line is echoed here.
 */
// `balsam web` has written web.json, which the Python client reads, before it prints its URL.
const f = useCliFixture("python", { web: true });
const CLIENT = resolve(fileURLToPath(import.meta.url), "../../../../clients/python");
/** The interpreter under test; BALSAM_TEST_PYTHON picks another (the client supports Python ≥ 3.9). */
const PYTHON = process.env.BALSAM_TEST_PYTHON ?? "python3";
/** Fewer tests than this means discovery lost a module (an import error reads as "Ran 0 tests ... OK" otherwise). */
const MIN_TESTS = 33;

test("python3 -m unittest: the Python client's suite passes against balsam web and a real launcher", async (t) => {
  const env = {
    ...process.env,
    ...f.db.env,
    PYTHONPATH: CLIENT,
    PYTHONUNBUFFERED: "1",
    PYTHONDONTWRITEBYTECODE: "1",
    BALSAM_TEST_NODE: process.execPath,
    BALSAM_TEST_BIN: BALSAM_BIN,
    BALSAM_NODELIST: "node1",
  };
  const py = spawn(PYTHON, ["-m", "unittest", "discover", "-v"], { cwd: CLIENT, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  py.stdout.on("data", (d: Buffer) => (out += d.toString()));
  py.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number>((r) => {
    py.on("error", (err) => {
      out += `\ncould not start ${PYTHON}: ${err.message} (scripts/provision.sh installs python3)`;
      r(127);
    });
    py.on("close", (c) => r(c ?? 1));
  });
  const ran = /^Ran (\d+) tests? in ([\d.]+s)$/m.exec(out);
  const verdict = /^(OK.*|FAILED.*)$/m.exec(out.slice(ran?.index ?? 0));
  for (const line of out.split("\n").filter((l) => l.startsWith("pushed results:"))) t.diagnostic(line);
  t.diagnostic(`${PYTHON} -m unittest: ${ran?.[0] ?? "no summary"} — ${verdict?.[0] ?? "?"}`);
  assert.equal(code, 0, `${out}\n--- balsam web ---\n${f.web!.output()}`);
  assert.ok(ran && Number(ran[1]) >= MIN_TESTS, `expected at least ${MIN_TESTS} tests:\n${out}`);
  assert.equal(verdict?.[0], "OK", `every test ran, none skipped:\n${out}`);
});
