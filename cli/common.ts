import { createInterface } from "node:readline/promises";
import { Command, CommanderError } from "commander";
import type { Balsam } from "../libs/client/index.js";
import { UsageError, coerceError, errorLine } from "../libs/errors/index.js";
import { redactUrl } from "../libs/config/redact.js";
import type { OpenOptions } from "./client.js";

/*
 * This file is loaded by every command, `--help` included, so it imports no
 * driver: the client (mongodb, bullmq, zod) comes in through a dynamic import
 * when an action first needs it. Loading them all cost 0.4 s of the 0.45 s a
 * `balsam --help` took.
 */

/** Exit codes: 0 ok, 1 runtime error, 2 usage error. */
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

export function printError(err: unknown): void {
  const e = coerceError(err);
  // Messages can carry a server's URL (driver errors do): never its password.
  process.stderr.write(redactUrl(`balsam: ${errorLine(e)}`) + "\n");
  if (process.env.BALSAM_DEBUG === "1" && e.stack) process.stderr.write(e.stack + "\n");
  process.exitCode = e instanceof UsageError ? EXIT_USAGE : EXIT_RUNTIME;
}

/** Wraps a command action: every error goes through printError, never process.exit(). */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      printError(err);
    }
  };
}

/** Opens the database at BALSAM_DB_PATH (see cli/client.ts). */
export async function openClient(opts: OpenOptions = {}): Promise<Balsam> {
  return (await import("./client.js")).openClient(opts);
}

/** Runs `fn` with a client, closing it afterwards whatever happens. */
export async function withClient<T>(fn: (b: Balsam) => Promise<T>, opts: OpenOptions = {}): Promise<T> {
  return (await import("./client.js")).withClient(fn, opts);
}

/** Asks y/N on a terminal. Off a terminal, callers must have been given --yes/--force. */
export async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const a = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
    return a === "y" || a === "yes";
  } finally {
    rl.close();
  }
}

export function isTerminal(): boolean {
  return Boolean(process.stdin.isTTY);
}

/**
 * A whole-number option parser for commander, failing as a usage error.
 * Beyond 2^53 a number is no longer exact, so that is the ceiling unless a
 * smaller `max` is given.
 */
export function intOption(name: string, min: number, max = Number.MAX_SAFE_INTEGER): (v: string) => number {
  return (v: string) => {
    if (!/^-?\d+$/.test(v.trim())) throw new UsageError(`${name} must be a whole number, not '${v}'`);
    const n = Number.parseInt(v, 10);
    if (n < min) throw new UsageError(`${name} must be ≥ ${min}, not ${n}`);
    if (!Number.isSafeInteger(n) || n > max) throw new UsageError(`${name} must be ≤ ${max}, not ${v.trim()}`);
    return n;
  };
}

export function out(line: string): void {
  process.stdout.write(line + "\n");
}

/**
 * Commander reports its own parse errors with exit code 1; Balsam's contract
 * says usage errors exit 2, so parse errors are mapped here.
 */
export function configureProgram(program: Command): void {
  program.exitOverride();
  program.configureOutput({
    outputError: (str, write) => write(str.replace(/^error: /, "balsam: ")),
  });
}

export function handleCommanderError(err: unknown): void {
  if (err instanceof CommanderError) {
    if (err.code === "commander.helpDisplayed" || err.code === "commander.version") {
      process.exitCode = 0;
      return;
    }
    // The help printed (to stderr) for want of a command — `balsam`, `balsam help nosuch` — is a usage error;
    // asked for (`balsam help`), it is not.
    if (err.code === "commander.help") {
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    // An option parser throwing our UsageError arrives wrapped.
    process.exitCode = EXIT_USAGE;
    return;
  }
  if (err instanceof UsageError) {
    printError(err);
    return;
  }
  printError(err);
}
