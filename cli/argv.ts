import type { Command, Option } from "commander";
import { UsageError } from "../libs/errors/index.js";

/**
 * Balsam 0.x's command line was argparse, and its users' scripts and habits
 * carry its spellings: `--post_handle_error` for `--post-handle-error`, and
 * any unique abbreviation of a long option (`ls --hist`). Commander knows
 * neither, so the words are rewritten to the full option names before
 * commander parses them. Values are never touched: the walk knows which
 * options take a value (and which take several, as argparse's `nargs='*'`)
 * from the commands themselves, and stops at `--`.
 */

/** Other names an option answers to, per command (0.x spellings such as `rm --wf-filter`). */
const aliases = new WeakMap<Command, Map<string, string>>();

/** Lets `cmd` take `--alias` for its `--target` option (not shown in help; say it in the option's description). */
export function aliasOption(cmd: Command, alias: string, target: string): void {
  const m = aliases.get(cmd) ?? new Map<string, string>();
  m.set(alias, target);
  aliases.set(cmd, m);
}

interface Known {
  /** Every long name the command answers to, aliases included. */
  longs: string[];
  byLong: Map<string, Option | undefined>;
  byShort: Map<string, Option>;
  alias: Map<string, string>;
}

function known(cmd: Command): Known {
  const opts = cmd.options as readonly Option[];
  const byLong = new Map<string, Option | undefined>(opts.filter((o) => o.long).map((o) => [o.long as string, o]));
  byLong.set("--help", undefined);
  const alias = aliases.get(cmd) ?? new Map<string, string>();
  const byShort = new Map(opts.filter((o) => o.short).map((o) => [o.short as string, o]));
  return { longs: [...byLong.keys(), ...alias.keys()], byLong, byShort, alias };
}

/** The full name a written long option stands for; undefined when it names none (commander then says so). */
function resolveLong(k: Known, written: string): string | undefined {
  const name = written.replace(/_/g, "-");
  const exact = k.alias.get(name) ?? (k.byLong.has(name) ? name : undefined);
  if (exact) return exact;
  const matches = [...new Set(k.longs.filter((l) => l.startsWith(name)).map((l) => k.alias.get(l) ?? l))];
  if (matches.length === 1) return matches[0];
  if (matches.length > 1) {
    throw new UsageError(`option '${written}' is ambiguous: it could be ${matches.join(", ")}`, { hint: "give more of its name" });
  }
  return undefined;
}

/** Rewrites one command's words (after its name); `words` are not changed. */
function normalizeWords(cmd: Command, words: readonly string[]): string[] {
  const k = known(cmd);
  const out: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    if (w === "--") {
      out.push(...words.slice(i));
      break;
    }
    let opt: Option | undefined;
    let inlineValue = false;
    if (w.startsWith("--") && w.length > 2) {
      const eq = w.indexOf("=");
      const written = eq < 0 ? w : w.slice(0, eq);
      const full = resolveLong(k, written);
      if (full === undefined) {
        out.push(w);
        continue;
      }
      out.push(eq < 0 ? full : full + w.slice(eq));
      opt = k.byLong.get(full);
      inlineValue = eq >= 0;
    } else if (/^-[^-]$/.test(w)) {
      out.push(w);
      opt = k.byShort.get(w);
    } else {
      out.push(w);
      continue;
    }
    if (!opt || inlineValue || !(opt.required || opt.optional)) continue;
    // The value words, copied as they are: a required value is the next word
    // whatever it looks like (commander's rule, so `--args '-x 1'` works);
    // further words of a variadic option run to the next word starting with '-'.
    const next = words[i + 1];
    if (next === undefined || (opt.optional && next.startsWith("-"))) continue;
    out.push(next);
    i++;
    if (!opt.variadic) continue;
    while (i + 1 < words.length && !(words[i + 1] as string).startsWith("-")) out.push(words[++i] as string);
  }
  return out;
}

/**
 * The whole command line, normalised: the program's own options, then the
 * subcommand's words. An unknown subcommand is left for commander to report.
 */
export function normalizeArgv(program: Command, args: readonly string[]): string[] {
  const at = args.findIndex((a) => !a.startsWith("-"));
  const head = normalizeWords(program, at < 0 ? args : args.slice(0, at));
  if (at < 0) return head;
  const name = args[at] as string;
  const sub = (program.commands as readonly Command[]).find((c) => c.name() === name || c.aliases().includes(name));
  const rest = args.slice(at + 1);
  return [...head, name, ...(sub ? normalizeWords(sub, rest) : rest)];
}
