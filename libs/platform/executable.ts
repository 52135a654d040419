import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";

/**
 * `cmd` as the OS would find it for a child with this PATH and cwd: a name
 * with a slash is a path from `cwd`, a bare name is looked up on PATH.
 * Undefined when there is no such executable file.
 */
export function findExecutable(cmd: string, path: string | undefined, cwd: string): string | undefined {
  const candidates = cmd.includes("/") ? [resolve(cwd, cmd)] : (path ?? "").split(delimiter).filter(Boolean).map((d) => join(d, cmd));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      if (statSync(c).isFile()) return c;
    } catch {
      // not this one
    }
  }
  return undefined;
}
