import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runBalsam } from "../support/cli.js";

/**
 * Issue 12: `balsam --help` and usage errors must not pay for the drivers.
 * A loader hook makes importing any of them fail, so a command that loads
 * one fails loudly instead of merely being slow.
 */
const HEAVY = ["mongodb", "bullmq", "ioredis", "zod", "execa", "cli-progress", "columnify"];
/**
 * The bundled CLI (scripts/bundle-cli.mjs) imports no package by name: its
 * manifest says which of its chunks hold a driver, and importing one of
 * those counts as loading that driver.
 */
const MANIFEST = fileURLToPath(new URL("../../bundle/manifest.json", import.meta.url));
const heavyChunks: Record<string, string> = {};
if (existsSync(MANIFEST)) {
  for (const [file, pkgs] of Object.entries(JSON.parse(readFileSync(MANIFEST, "utf8")) as Record<string, string[]>)) {
    const heavy = pkgs.find((p) => HEAVY.includes(p));
    if (heavy) heavyChunks[file] = heavy;
  }
}
const HOOK =
  "data:text/javascript," +
  encodeURIComponent(
    `import { register } from "node:module";
register("data:text/javascript," + encodeURIComponent(${JSON.stringify(
      `const chunks = ${JSON.stringify(heavyChunks)};
export async function resolve(s, c, n) {
  if (/^(${HEAVY.join("|")})(\\/|$)/.test(s)) throw new Error("loaded a driver: " + s);
  const r = await n(s, c);
  const m = /\\/dist\\/bundle\\/([^/]+)$/.exec(r.url);
  if (m && chunks[m[1]]) throw new Error("loaded a driver: " + chunks[m[1]] + " (bundled in " + m[1] + ")");
  return r;
}`,
    )}));`,
  );

const scratch = mkdtempSync(join(tmpdir(), "balsam-startup-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

function withoutDrivers(args: string[], env: NodeJS.ProcessEnv = {}) {
  return runBalsam(args, { env: { NODE_OPTIONS: `--import=${HOOK}`, BALSAM_HOME: join(scratch, "home"), ...env } });
}

describe("start-up loads only what the command needs", () => {
  const cases: Array<[string[], number]> = [
    [["--help"], 0],
    [["-V"], 0],
    [["ls", "--help"], 0],
    [["rerun", "--help"], 0],
    [["ls", "--bogus"], 2],
    [["ls", "--h"], 2],
    [["ls", "--state", "NOPE"], 2],
    [["ls", "--wf", "a:b"], 2],
    [["rm", "jobs"], 2],
    [["rerun"], 2],
    [["job", "--name", "x", "--application", "A"], 2],
    [["job", "--name", "x", "--application", "A", "--workflow", "W", "--env", "=1"], 2],
    [["modify", "x", "state", "NOPE"], 2],
    [["deactivate"], 0],
  ];
  for (const [args, code] of cases) {
    test(`balsam ${args.join(" ")} loads no driver`, async () => {
      const r = await withoutDrivers(args);
      assert.doesNotMatch(r.stderr, /loaded a driver/);
      assert.equal(r.code, code, r.stderr);
    });
  }

  test("the hook does catch a command that needs a driver", async () => {
    const dir = join(scratch, "db");
    const init = await runBalsam(["init", dir, "--mongo-url", "mongodb://127.0.0.1:1", "--redis-url", "redis://127.0.0.1:1"], { env: { BALSAM_HOME: join(scratch, "home") } });
    assert.equal(init.code, 0, init.stderr);
    const r = await withoutDrivers(["ls"], { BALSAM_DB_PATH: dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /loaded a driver: (zod|mongodb|bullmq|ioredis)/);
  });
});
