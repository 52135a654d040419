import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cacheName, readCache, readSource, requireCached } from "../../cli/code-cache.js";

/**
 * The bundled CLI loads its drivers through V8's code cache
 * (cli/code-cache.ts). A cache must only ever make it faster: a missing,
 * stale, corrupt or unwritable one means compiling as before.
 */
const LOADER = fileURLToPath(new URL("../../cli/code-cache.js", import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), "balsam-code-cache-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Loads `file` in a fresh process; says whether a cache was used and what the file exported. */
function load(file: string, env: NodeJS.ProcessEnv = {}): Promise<{ used: string | null; value: unknown; code: number; stderr: string }> {
  const script = `import { requireCached } from ${JSON.stringify(LOADER)};
const report = {};
const m = requireCached(${JSON.stringify(file)}, report);
console.log(JSON.stringify({ used: report.usedCache ?? null, value: m.answer(20) }));`;
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", rej);
    child.on("close", (code) => {
      const parsed = code === 0 ? (JSON.parse(out) as { used: string | null; value: unknown }) : { used: null, value: undefined };
      res({ ...parsed, code: code ?? 1, stderr: err });
    });
  });
}

let n = 0;
/** A CommonJS file in a directory of its own, computing something so a wrong cache would show. */
function driver(body = "exports.answer = (k) => { let s = 0; for (let i = 1; i <= k; i++) s += i * i; return s + require('node:path').sep.length; };"): { dir: string; file: string } {
  const dir = join(scratch, `d${n++}`);
  const file = join(dir, "drv-0123456789ab.cjs");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, body);
  return { dir, file };
}
const ANSWER = 2870 + 1;

describe("V8 code cache for the bundled drivers", () => {
  test("the first run writes the cache beside the file, the next one uses it", async () => {
    const { dir, file } = driver();
    const first = await load(file, { BALSAM_CODE_CACHE: "" });
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual([first.used, first.value], [null, ANSWER]);
    assert.ok(existsSync(join(dir, cacheName(file))), "cache written");
    assert.ok(readCache(join(dir, cacheName(file)), readSource(file).sourceKey), "cache valid");
    const second = await load(file, { BALSAM_CODE_CACHE: "" });
    assert.deepEqual([second.used, second.value], [join(dir, cacheName(file)), ANSWER]);
  });

  test("a file that is not ASCII is read as UTF-8, compiled and cached alike", async () => {
    // The bundles are ASCII and are read as latin1; anything else must not be.
    const { file } = driver("exports.answer = () => 'é✓日' + '\\u00e9'.length;");
    for (const run of [await load(file, { BALSAM_CODE_CACHE: "" }), await load(file, { BALSAM_CODE_CACHE: "" })]) {
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.value, "é✓日1");
    }
    assert.equal(readSource(file).source, readFileSync(file, "utf8"));
  });

  test("a corrupt, truncated or foreign cache file is ignored and replaced", async () => {
    const { dir, file } = driver();
    const cache = join(dir, cacheName(file));
    await load(file, { BALSAM_CODE_CACHE: "" });
    const good = readFileSync(cache);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 100] = (flipped[flipped.length - 100] as number) ^ 0xff;
    for (const bad of [flipped, good.subarray(0, good.length >> 1), Buffer.alloc(0), Buffer.from("not a cache at all")]) {
      writeFileSync(cache, bad);
      const r = await load(file, { BALSAM_CODE_CACHE: "" });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual([r.used, r.value], [null, ANSWER]);
      assert.ok(readCache(cache, readSource(file).sourceKey), "replaced by a valid cache");
    }
  });

  test("a cache of the code before an edit in place is not used", async () => {
    const { dir, file } = driver();
    await load(file, { BALSAM_CODE_CACHE: "" });
    // Same length, other code: V8's own check (the length) would take the old cache.
    const other = readFileSync(file, "utf8").replace("i * i", "i + i");
    writeFileSync(file, other);
    const r = await load(file, { BALSAM_CODE_CACHE: "" });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([r.used, r.value], [null, 420 + 1]);
    const again = await load(file, { BALSAM_CODE_CACHE: "" });
    assert.deepEqual([again.used, again.value], [join(dir, cacheName(file)), 420 + 1]);
  });

  test("an unwritable cache location means no cache, not an error", async () => {
    const { file } = driver();
    const blocker = join(scratch, "a-file");
    writeFileSync(blocker, "");
    for (const env of [{ BALSAM_CODE_CACHE: join(blocker, "sub") }, { BALSAM_CODE_CACHE: "0" }]) {
      const r = await load(file, env);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual([r.used, r.value, r.stderr], [null, ANSWER, ""]);
    }
  });

  test("many processes at once leave one valid cache and no temporary files", async () => {
    const { dir, file } = driver();
    const rs = await Promise.all(Array.from({ length: 8 }, () => load(file, { BALSAM_CODE_CACHE: "" })));
    for (const r of rs) assert.deepEqual([r.code, r.value], [0, ANSWER], r.stderr);
    assert.deepEqual(readdirSync(dir).sort(), [cacheName(file), "drv-0123456789ab.cjs"].sort());
    assert.ok(readCache(join(dir, cacheName(file)), readSource(file).sourceKey));
  });

  test("requireCached loads a file once per process", () => {
    const { file } = driver("exports.answer = () => 1; exports.loads = (globalThis.__balsamLoads = (globalThis.__balsamLoads ?? 0) + 1);");
    const saved = process.env.BALSAM_CODE_CACHE;
    process.env.BALSAM_CODE_CACHE = "0";
    try {
      const a = requireCached(file) as { loads: number };
      const b = requireCached(file) as { loads: number };
      assert.equal(a, b);
      assert.equal(a.loads, 1);
    } finally {
      if (saved === undefined) delete process.env.BALSAM_CODE_CACHE;
      else process.env.BALSAM_CODE_CACHE = saved;
    }
  });
});
