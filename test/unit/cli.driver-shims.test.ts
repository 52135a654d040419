import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/**
 * What the bundled mongodb driver loads late (scripts/driver-shims/, wired
 * in by scripts/bundle-cli.mjs) must behave as what it stands for: the
 * saslprep shim as @mongodb-js/saslprep, the lazy built-ins as the modules.
 */
const require = createRequire(import.meta.url);
const SHIMS = fileURLToPath(new URL("../../../scripts/driver-shims/", import.meta.url));
type Prep = (s: unknown, o?: { allowUnassigned?: boolean }) => string;
const shim = require(SHIMS + "saslprep.cjs") as Prep & { saslprep: Prep; default: Prep };
const real = require("@mongodb-js/saslprep") as Prep;
const lazyBuiltin = require(SHIMS + "lazy-builtin.cjs") as (name: string, functions?: string[]) => Record<string, unknown>;

/** The result, or the error's class and message: what a caller can tell apart. */
function outcome(f: Prep, input: unknown, opts?: { allowUnassigned?: boolean }): string {
  try {
    return "ok " + JSON.stringify(f(input, opts));
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
}

describe("the saslprep shim", () => {
  test("is the package's SASLprep for printable ASCII, one character at a time and in random strings", () => {
    const inputs = [""];
    for (let c = 0x20; c <= 0x7e; c++) inputs.push(String.fromCharCode(c));
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let i = 0; i < 300; i++) inputs.push(Array.from({ length: 1 + rnd(40) }, () => String.fromCharCode(0x20 + rnd(95))).join(""));
    for (const s of inputs) assert.equal(outcome(shim, s), outcome(real, s), JSON.stringify(s));
  });

  test("hands everything else to the package: mapped, normalised, prohibited, bidirectional, unassigned, not a string", () => {
    const inputs: unknown[] = ["I\u00ADX", "user\u00A0name", "\u00AA", "\u2168", "a\u0007b", "\u007f", "tab\there", "\u0627\u0031", "\u0627a\u0627", "\u0221", "pässwörd", "日本語", 42, null];
    for (const s of inputs) {
      assert.equal(outcome(shim, s), outcome(real, s), JSON.stringify(s));
      assert.equal(outcome(shim, s, { allowUnassigned: true }), outcome(real, s, { allowUnassigned: true }), JSON.stringify(s));
    }
    // Not all alike: the package did map and refuse here.
    assert.equal(outcome(shim, "I\u00ADX"), 'ok "IX"');
    assert.match(outcome(shim, "a\u0007b"), /Prohibited character/);
  });

  test("has the package's shape", () => {
    assert.equal(shim.saslprep, shim);
    assert.equal(shim.default, shim);
  });
});

describe("lazy built-ins", () => {
  test("load the module on first use and then are the module", () => {
    // A fresh process: this one has loaded tls already.
    const script = `
      const lazy = require(${JSON.stringify(SHIMS + "lazy-builtin.cjs")});
      const loaded = () => process.moduleLoadList.includes("NativeModule tls");
      const tls = lazy("tls");
      const before = loaded();
      const same = tls.connect === require("tls").connect && "createServer" in tls && Object.keys(tls).join() === Object.keys(require("tls")).join();
      console.log(JSON.stringify({ before, after: loaded(), same }));`;
    const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { before: false, after: true, same: true });
  });

  test("forward property reads, `in` and descriptors", () => {
    const dns = lazyBuiltin("dns");
    const realDns = require("node:dns") as Record<string, unknown>;
    assert.equal(dns.promises, realDns.promises);
    assert.equal(dns.TIMEOUT, realDns.TIMEOUT);
    assert.ok("resolveSrv" in dns);
    assert.equal(Object.getOwnPropertyDescriptor(dns, "lookup")?.value, realDns.lookup);
  });

  test("hand out the functions named for later as functions that load the module when called", () => {
    const script = `
      const { promisify } = require("node:util");
      const zlib = require(${JSON.stringify(SHIMS + "lazy-builtin.cjs")})("zlib", ["inflate", "deflate"]);
      const loaded = () => process.moduleLoadList.includes("NativeModule zlib");
      const inflate = promisify(zlib.inflate.bind(zlib));
      const deflate = promisify(zlib.deflate.bind(zlib));
      const before = loaded();
      (async () => {
        const packed = await deflate(Buffer.from("balsam ".repeat(50)), { level: 9 });
        const back = (await inflate(packed)).toString();
        console.log(JSON.stringify({ before, after: loaded(), ok: back === "balsam ".repeat(50), smaller: packed.length < 350, other: typeof zlib.gunzipSync }));
      })();`;
    const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { before: false, after: true, ok: true, smaller: true, other: "function" });
  });

  test("the bundled driver loads neither tls, http, dns nor zlib until a connection needs them", () => {
    const drivers = fileURLToPath(new URL("../../bundle/drivers/", import.meta.url));
    const file = drivers + readdirSync(drivers).find((f) => /^mongodb-[0-9a-f]+\.cjs$/.test(f));
    const script = `
      const net = require("node:net");
      const before = new Set(process.moduleLoadList);
      const { mongodb } = require(${JSON.stringify(file)});
      const loadedNow = ["tls", "http", "dns", "zlib"].filter((m) => process.moduleLoadList.includes("NativeModule " + m) && !before.has("NativeModule " + m));
      // A TLS connection to a server that hangs up: tls.connect must be there when called.
      const server = net.createServer((s) => s.destroy()).listen(0, "127.0.0.1", async () => {
        const c = new mongodb.MongoClient("mongodb://127.0.0.1:" + server.address().port + "/?tls=true&serverSelectionTimeoutMS=400");
        const err = await c.connect().then(() => null, (e) => e);
        await c.close();
        server.close();
        console.log(JSON.stringify({ loadedNow, error: err && err.name, notAFunction: /is not a function/.test(String(err && err.stack)), tlsAfter: process.moduleLoadList.includes("NativeModule tls") }));
      });`;
    const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { loadedNow: [], error: "MongoServerSelectionError", notAFunction: false, tlsAfter: true });
  });
});
