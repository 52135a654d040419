import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runBalsam } from "../support/cli.js";

/** `balsam log` reads its files itself (no server): a database directory from `balsam init` is all it needs. */
test("log -n N prints the last N lines of each log however long they are, and no more than a file has", async () => {
  const home = mkdtempSync(join(tmpdir(), "balsam-log-"));
  try {
    const db = join(home, "db");
    const env = { BALSAM_HOME: join(home, "home"), BALSAM_DB_PATH: db };
    const init = await runBalsam(["init", db], { env });
    assert.equal(init.code, 0, init.stderr);
    // 3,000 lines of 101 bytes: ~300 KB, well past what one read from the end takes in.
    const lines = Array.from({ length: 3000 }, (_, i) => `line ${String(i).padStart(5, "0")} ${"x".repeat(89)}`);
    writeFileSync(join(db, "log", "big.log"), lines.join("\n") + "\n");
    writeFileSync(join(db, "log", "small.log"), "one\ntwo\n");
    const r = await runBalsam(["log", "-n", "2500"], { env });
    assert.equal(r.code, 0, r.stderr);
    const [big, small] = r.stdout.split(/^==> .* <==\n/m).slice(1);
    assert.deepEqual(big!.trimEnd().split("\n"), lines.slice(-2500));
    assert.deepEqual(small!.trimEnd().split("\n"), ["one", "two"]);
    const few = await runBalsam(["log", "-n", "2"], { env });
    assert.match(few.stdout, /==> .*big\.log <==\nline 02998 x+\nline 02999 x+\n/);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
