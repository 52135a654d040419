import { randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../../libs/errors/index.js";

/** Kept per database so a restarted `balsam web` keeps the URL a user bookmarked. */
export const TOKEN_FILE = "web-token";
/** Where clients (the Python one, scripts) find the running server and its token. */
export const WEB_INFO_FILE = "web.json";

const TOKEN_RE = /^[0-9a-f]{48}$/;

export interface WebInfo {
  url: string;
  token: string;
  pid: number;
  host: string;
}

/**
 * The database's web token: read from `<dir>/web-token`, or made (192
 * random bits, 48 hex characters) and written 0600 when there is none.
 * A file that is not a token, or that others can read while the server is
 * to listen on every interface, is refused rather than replaced: the
 * user must see that something touched it.
 */
export function ensureToken(dir: string, opts: { listenAll?: boolean } = {}): string {
  const file = join(dir, TOKEN_FILE);
  let fd: number | undefined;
  try {
    fd = openSync(file, "wx", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw new ConfigError(`cannot create ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (fd !== undefined) {
    const token = randomBytes(24).toString("hex");
    writeSync(fd, token + "\n");
    closeSync(fd);
    return token;
  }
  const token = readFileSync(file, "utf8").trim();
  if (!TOKEN_RE.test(token)) {
    throw new ConfigError(`${file} does not hold a web token (48 hex characters)`, { hint: "delete it and `balsam web` makes a new one" });
  }
  const mode = statSync(file).mode & 0o077;
  if (mode !== 0) {
    if (opts.listenAll) {
      throw new ConfigError(`${file} is readable by other users (mode ${(statSync(file).mode & 0o777).toString(8)}): refusing to listen on all interfaces with it`, {
        hint: `chmod 600 ${file}, or delete it for a new token`,
      });
    }
    chmodSync(file, 0o600);
  }
  return token;
}

/** Writes `<dir>/web.json` (0600) atomically: a reader never sees half a file. */
export function writeWebInfo(dir: string, info: WebInfo): void {
  const file = join(dir, WEB_INFO_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(info, null, 2) + "\n", { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

/** Removes web.json if it still describes this process (a newer server may have replaced it). */
export function removeWebInfo(dir: string, pid = process.pid): void {
  const file = join(dir, WEB_INFO_FILE);
  try {
    const info = JSON.parse(readFileSync(file, "utf8")) as Partial<WebInfo>;
    if (info.pid === pid) rmSync(file, { force: true });
  } catch {
    // Gone or unreadable: nothing of ours to remove.
  }
}

/** Constant-time comparison, so response times do not leak how much of a guess was right. */
export function tokenMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}
