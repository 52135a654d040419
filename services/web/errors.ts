import { BalsamError, coerceError, errorLine } from "../../libs/client/index.js";
import { redactUrl } from "../../libs/config/index.js";

export type ErrorCode = "BadRequest" | "Unauthorized" | "NotFound" | "Conflict" | "TooLarge" | "Internal";

/** An error that already knows its HTTP status and contract code. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const BY_BALSAM_CODE: Record<string, [number, ErrorCode]> = {
  USAGE: [400, "BadRequest"],
  NOT_FOUND: [404, "NotFound"],
  AMBIGUOUS: [409, "Conflict"],
  CONFLICT: [409, "Conflict"],
  INVALID_TRANSITION: [409, "Conflict"],
};

/**
 * The one readable line a client gets for any error: the library's own
 * message and hint, never a stack trace, never a server password.
 */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const fastifyErr = err as { statusCode?: number; code?: string; message?: string };
  if (fastifyErr.code === "FST_ERR_CTP_BODY_TOO_LARGE") return new HttpError(413, "TooLarge", "request body too large");
  if (fastifyErr.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") return new HttpError(400, "BadRequest", "the body must be JSON (Content-Type: application/json)");
  if (typeof fastifyErr.statusCode === "number" && fastifyErr.statusCode >= 400 && fastifyErr.statusCode < 500 && fastifyErr.code?.startsWith("FST_")) {
    return new HttpError(400, "BadRequest", fastifyErr.message ?? "bad request");
  }
  if (err instanceof BalsamError) {
    const [status, code] = BY_BALSAM_CODE[err.code] ?? [500, "Internal" as const];
    return new HttpError(status, code, redactUrl(errorLine(err)));
  }
  return new HttpError(500, "Internal", redactUrl(coerceError(err).message));
}

export function errorBody(e: HttpError): { error: { code: ErrorCode; message: string } } {
  return { error: { code: e.code, message: e.message } };
}
