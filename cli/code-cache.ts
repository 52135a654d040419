import { isAscii } from "node:buffer";
import { createHash } from "node:crypto";
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import { Script } from "node:vm";

/**
 * Loads a CommonJS file through V8's code cache (Node 20 has no
 * `module.enableCompileCache`). The bundled CLI keeps its drivers (the
 * mongodb driver, bullmq + ioredis) in such files, dist/bundle/drivers/*.cjs
 * (scripts/bundle-cli.mjs): compiling them on every `balsam ls` cost more
 * than the query. The first run compiles as usual and, on exit, stores the
 * code V8 compiled — with the functions that run called, so compiled too —
 * beside the file, or in the user's cache directory when that is not
 * writable; later runs skip the compiling.
 *
 * Safe by construction:
 * - the cache's name holds the driver file's name (with its content hash,
 *   from the build), Node's version and the architecture, and its header
 *   the size, mtime and inode of the file it was made from: V8 itself only
 *   compares the source's length, so code edited in place must not meet the
 *   cache of the code before; V8 rejects data of another V8 or other flags
 *   (then the run writes a fresh one);
 * - V8 checks little of the data itself, so the file carries a SHA-1 of it
 *   and a file that does not match is ignored, never handed to V8;
 * - it is written to a temporary name and renamed, so many `balsam` at once
 *   never see half a file; any error reading or writing means "no cache".
 *
 * BALSAM_CODE_CACHE=0 turns it off; BALSAM_CODE_CACHE=DIR puts it in DIR.
 */

const MAGIC = "balsam-v8-cache-2";
const SHA1_BYTES = 20;

/** The header line: what the cache is for, down to the source file's identity. */
function header(sourceKey: string): Buffer {
  return Buffer.from(`${MAGIC} ${sourceKey}\n`);
}

/** Where caches are looked for and written, in order. */
export function cacheDirs(file: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const setting = env.BALSAM_CODE_CACHE;
  if (setting === "0" || setting === "off") return [];
  if (setting) return [setting];
  const home = safeHomedir();
  const user = env.XDG_CACHE_HOME || (home && join(home, ".cache"));
  return [dirname(file), ...(user ? [join(user, "balsam")] : [])];
}

function safeHomedir(): string | undefined {
  try {
    return homedir() || undefined;
  } catch {
    return undefined;
  }
}

export function cacheName(file: string): string {
  return `${basename(file)}.${process.version}-${process.arch}.v8cache`;
}

/** The cached code in `path` made from the source `sourceKey` names, or undefined when missing, stale, truncated or corrupt. */
export function readCache(path: string, sourceKey: string): Buffer | undefined {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch {
    return undefined;
  }
  const want = header(sourceKey);
  const head = want.length + SHA1_BYTES;
  if (buf.length <= head || !buf.subarray(0, want.length).equals(want)) return undefined;
  const data = buf.subarray(head);
  const sum = createHash("sha1").update(data).digest();
  return sum.equals(buf.subarray(want.length, head)) ? data : undefined;
}

/** Writes `data` to `path` through a temporary file; false when it could not. */
export function writeCache(path: string, sourceKey: string, data: Buffer): boolean {
  const tmp = `${path}.${process.pid}-${Math.random().toString(36).slice(2)}.tmp`;
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(tmp, Buffer.concat([header(sourceKey), createHash("sha1").update(data).digest(), data]), { mode: 0o644 });
    renameSync(tmp, path);
    return true;
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      // never written
    }
    return false;
  }
}

export interface LoadReport {
  /** The cache used, or undefined when the file was compiled from source. */
  usedCache: string | undefined;
}

const loaded = new Map<string, unknown>();

/**
 * The file's text and what identifies this version of it (size, mtime, inode), from one open.
 * The bundles are ASCII (esbuild escapes the rest), and ASCII decodes as
 * latin1 into the same string by a plain copy: 0.3 ms for the 1.1 MB driver
 * against 16–20 ms through the UTF-8 decoder. Anything else is decoded as UTF-8.
 */
export function readSource(file: string): { source: string; sourceKey: string } {
  const fd = openSync(file, "r");
  try {
    const st = fstatSync(fd);
    const bytes = readFileSync(fd);
    return { source: bytes.toString(isAscii(bytes) ? "latin1" : "utf8"), sourceKey: `${st.size}:${st.mtimeMs}:${st.ino}` };
  } finally {
    closeSync(fd);
  }
}

/**
 * `module.exports` of the CommonJS file `file` (once per process), compiled
 * with a cache from {@link cacheDirs} when one is valid. `report` is told
 * what happened (for tests).
 */
export function requireCached(file: string, report?: LoadReport): unknown {
  if (loaded.has(file)) return loaded.get(file);
  const { source, sourceKey } = readSource(file);
  const dirs = cacheDirs(file);
  const name = cacheName(file);
  let cachedData: Buffer | undefined;
  let usedCache: string | undefined;
  for (const dir of dirs) {
    cachedData = readCache(join(dir, name), sourceKey);
    if (cachedData) {
      usedCache = join(dir, name);
      break;
    }
  }
  // The same wrapper as Node's own CommonJS loader.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file,
    ...(cachedData ? { cachedData } : {}),
  });
  if (script.cachedDataRejected) usedCache = undefined;
  if (report) report.usedCache = usedCache;
  if (usedCache === undefined && dirs.length) {
    // On exit, so the code of the functions this run called is in it too.
    process.once("exit", () => {
      let data: Buffer;
      try {
        data = script.createCachedData();
      } catch {
        return;
      }
      for (const dir of dirs) if (writeCache(join(dir, name), sourceKey, data)) break;
    });
  }
  const mod = { exports: {} as unknown };
  const wrapper = script.runInThisContext() as (e: unknown, r: NodeRequire, m: { exports: unknown }, f: string, d: string) => void;
  wrapper.call(mod.exports, mod.exports, createRequire(file), mod, file, dirname(file));
  loaded.set(file, mod.exports);
  return mod.exports;
}
