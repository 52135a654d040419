import { parse } from "shell-quote";
import { UsageError } from "../errors/index.js";
import { checkJobName } from "./workdir.js";

const SCRIPT_HINT = "put the shell code in a script and give the script's path";

/**
 * Splits a command line into words as a POSIX shell would — quotes and
 * backslashes removed, `$VAR` and globs kept literally — without running a
 * shell. The launcher starts every executable, `args`, `mpi_flags` and
 * pre/postprocess script through this, and `balsam app`/`balsam job` check
 * with it, so what is accepted when an app or job is made is what runs.
 * Shell syntax (`|`, `;`, `&&`, `>`, `$(…)`, `#…`) and unterminated quotes
 * are refused with a UsageError naming `what`.
 */
export function splitCommandLine(line: string, what: string): string[] {
  if (!line.trim()) return [];
  // Every job of an app splits the same executable and mostly the same args: a launcher would parse them again per job.
  const hit = splitCache.get(line);
  if (hit) return hit.slice();
  const words = splitUncached(line, what);
  if (splitCache.size >= SPLIT_CACHE_MAX) splitCache.clear();
  splitCache.set(line, words);
  return words.slice();
}

/** Lines that split cleanly, and their words; only clean ones are kept, so a refusal names its `what` each time. */
const splitCache = new Map<string, string[]>();
const SPLIT_CACHE_MAX = 1000;

function splitUncached(line: string, what: string): string[] {
  // shell-quote silently drops an unterminated quote, which would run something other than what was typed.
  const open = unterminated(line);
  if (open) throw new UsageError(`${what} '${line}' ${open}`, { hint: "close the quote, or escape the character with a backslash" });
  return parse(line, (name: string) => `$${name}`).map((p) => {
    if (typeof p === "string") return p;
    if ("pattern" in p) return p.pattern;
    const syntax = "op" in p ? p.op : `#${p.comment}`;
    throw new UsageError(`${what} '${line}' contains shell syntax ('${syntax}'): the launcher runs it without a shell`, { hint: SCRIPT_HINT });
  });
}

/** What is left open at the end of `line` — a quote or a lone backslash — as a phrase; undefined when nothing is. */
function unterminated(line: string): string | undefined {
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote === "'") {
      if (c === "'") quote = undefined;
    } else if (c === "\\") {
      if (i === line.length - 1) return "ends with a lone backslash";
      i++;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
    } else if (c === "'" || c === '"') {
      quote = c;
    }
  }
  if (quote === "'") return "has an unterminated single quote";
  if (quote === '"') return "has an unterminated double quote";
  return undefined;
}

/** What the launcher would refuse in an app: its commands as it will split them. */
export function checkAppForLaunch(app: { executable?: string; preprocess?: string; postprocess?: string }): void {
  if (app.executable !== undefined) splitCommandLine(app.executable, "executable");
  if (app.preprocess !== undefined) splitCommandLine(app.preprocess, "preprocess");
  if (app.postprocess !== undefined) splitCommandLine(app.postprocess, "postprocess");
}

/** What the launcher would refuse in a job: a name too long for its directory, words it cannot split. */
export function checkJobForLaunch(job: { name?: string; args?: string; mpiFlags?: string; preprocess?: string; postprocess?: string }): void {
  if (job.name !== undefined) checkJobName(job.name);
  if (job.args !== undefined) splitCommandLine(job.args, "args");
  if (job.mpiFlags !== undefined) splitCommandLine(job.mpiFlags, "mpi_flags");
  if (job.preprocess !== undefined) splitCommandLine(job.preprocess, "preprocess");
  if (job.postprocess !== undefined) splitCommandLine(job.postprocess, "postprocess");
}
