import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { columnifyTable, plainTable, table } from "../../cli/format.js";

/** A deterministic generator, so a failure names a reproducible case. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const PIECES = ["", " ", "  ", "a", "task12", "WF3", "JOB_FINISHED", "x y", " lead", "trail ", "a  b", "--", "|", "é", "\t", "日本", "\u001b[31mred\u001b[0m"];

describe("ls tables", () => {
  test("the ASCII fast path draws exactly what columnify draws", () => {
    const next = rng(12);
    for (let round = 0; round < 400; round++) {
      const columns = ["job_id", "name", "workflow", "state", " pad "].slice(0, 1 + Math.floor(next() * 5));
      const rows = Array.from({ length: Math.floor(next() * 8) }, () =>
        Object.fromEntries(
          columns.map((c) => {
            const parts = Array.from({ length: Math.floor(next() * 3) }, () => PIECES[Math.floor(next() * 11)] ?? "");
            return [c, parts.join("")];
          }),
        ),
      );
      if (next() < 0.2 && rows[0]) delete rows[0][columns[0] as string];
      assert.deepEqual(plainTable(columns, rows), columnifyTable(columns, rows), JSON.stringify({ columns, rows }));
    }
  });

  test("cells beyond printable ASCII go to columnify, which measures them", () => {
    for (const odd of ["é", "\t", "日本", "\u001b[31mred\u001b[0m", "a\u00a0b"]) {
      const rows = [{ name: odd, state: "READY" }, { name: "plain", state: "RUNNING" }];
      assert.equal(plainTable(["name", "state"], rows), undefined, JSON.stringify(odd));
      assert.deepEqual(table(["name", "state"], rows).filter((_, i) => i !== 1), columnifyTable(["name", "state"], rows));
    }
  });

  test("a header row, a line of dashes as wide as the widest line, then the rows", () => {
    assert.deepEqual(table(["name", "state"], [{ name: "task1", state: "READY" }, { name: "t", state: "" }]), [
      "name  | state",
      "-------------",
      "task1 | READY",
      "t     |",
    ]);
  });
});
