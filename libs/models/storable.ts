import { UsageError } from "../errors/index.js";

/** Deeper than this, a value is not looked into (MongoDB refuses documents nested deeper than 100). */
const MAX_DEPTH = 200;

/**
 * Refuses a NaN anywhere in `value` (a job spec, or fields about to be set),
 * naming where it is. The embedded server (FerretDB) cannot store NaN: it
 * drops the connection of a command that holds one, which reached the user
 * as "connection … closed" with nothing said of why. A real MongoDB stores
 * it; refusing it on both keeps a workflow portable between them. Infinities
 * are left to the server, which refuses them with a message of its own.
 */
export function checkNoNaN(value: unknown, path = "", depth = 0): void {
  if (typeof value === "number") {
    if (Number.isNaN(value)) throw new UsageError(`${path || "the value"} is NaN, which a job cannot hold; use null or the string "NaN"`);
    return;
  }
  if (value === null || typeof value !== "object" || depth > MAX_DEPTH || value instanceof Date || ArrayBuffer.isView(value)) return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkNoNaN(v, `${path}[${i}]`, depth + 1));
    return;
  }
  for (const [k, v] of Object.entries(value)) checkNoNaN(v, path ? `${path}.${k}` : k, depth + 1);
}
