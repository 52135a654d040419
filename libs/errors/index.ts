/**
 * The few error classes every layer throws. The CLI maps them to exit codes:
 * {@link UsageError} → 2, everything else → 1. Each carries a `hint` the CLI
 * prints after the message, so a user sees one line saying what to do.
 */
export type BalsamErrorCode =
  | "USAGE"
  | "NOT_FOUND"
  | "AMBIGUOUS"
  | "CONFLICT"
  | "INVALID_TRANSITION"
  | "UNREACHABLE"
  | "CONFIG"
  | "RUNTIME";

export interface BalsamErrorOptions {
  hint?: string;
  cause?: unknown;
}

export class BalsamError extends Error {
  readonly code: BalsamErrorCode;
  readonly hint: string | undefined;

  constructor(code: BalsamErrorCode, message: string, options: BalsamErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
  }
}

/** Bad command-line input or bad arguments to an API call: exit code 2. */
export class UsageError extends BalsamError {
  constructor(message: string, options: BalsamErrorOptions = {}) {
    super("USAGE", message, options);
  }
}

export class NotFoundError extends BalsamError {
  constructor(message: string, options: BalsamErrorOptions = {}) {
    super("NOT_FOUND", message, options);
  }
}

/** An id part matching several jobs; `candidates` lists (some of) them. */
export class AmbiguousIdError extends BalsamError {
  readonly candidates: string[];
  /** `more`: other jobs match beyond the candidates listed. */
  constructor(part: string, candidates: string[], more = false) {
    super("AMBIGUOUS", `id '${part}' matches ${more ? `more than ${candidates.length}` : candidates.length} jobs: ${candidates.join(", ")}${more ? ", …" : ""}`, {
      hint: "give more characters of the id",
    });
    this.candidates = candidates;
  }
}

/** A write refused because it would break a rule: duplicate name, cycle, lost race. */
export class ConflictError extends BalsamError {
  constructor(message: string, options: BalsamErrorOptions = {}) {
    super("CONFLICT", message, options);
  }
}

export class InvalidTransitionError extends BalsamError {
  constructor(from: string, to: string, allowed: readonly string[]) {
    super("INVALID_TRANSITION", `cannot move a job from ${from} to ${to}`, {
      hint: allowed.length ? `from ${from} a job may go to: ${allowed.join(", ")}` : `${from} is final`,
    });
  }
}

/** A server that does not answer. Transient: callers may retry with backoff. */
export class UnreachableError extends BalsamError {
  constructor(what: string, url: string, options: BalsamErrorOptions = {}) {
    super("UNREACHABLE", `cannot reach ${what} at ${url}`, options);
  }
}

export class ConfigError extends BalsamError {
  constructor(message: string, options: BalsamErrorOptions = {}) {
    super("CONFIG", message, options);
  }
}

/** What was thrown, as one line: its message, and a BalsamError's hint after it in parentheses. */
export function errorLine(err: unknown): string {
  const e = coerceError(err);
  return e instanceof BalsamError && e.hint ? `${e.message} (${e.hint})` : e.message;
}

/** Turns whatever was thrown into an Error, so every catch can log `.message`. */
export function coerceError(err: unknown): Error {
  if (err instanceof Error) return err;
  if (typeof err === "string") return new Error(err);
  try {
    return new Error(JSON.stringify(err));
  } catch {
    return new Error(String(err));
  }
}
