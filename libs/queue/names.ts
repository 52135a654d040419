import { UsageError } from "../errors/index.js";

/**
 * Workflow names as queue names, apart from the BullMQ code so that checking
 * a `--wf` costs no driver load (the CLI checks it before connecting).
 */

const WORKFLOW_RE = /^[A-Za-z0-9_.-]{1,100}$/;

/**
 * Names a workflow may not take: each is also a directory under
 * `<db>/data/`, where `.` and `..` would escape it and `servers` holds the
 * database's own server files.
 */
const RESERVED_WORKFLOWS = new Set([".", "..", "servers"]);

/**
 * The BullMQ queue name for a workflow: the name as a hash tag, `{name}`.
 * BullMQ builds Redis keys as `prefix:queue:suffix` (so a ':', spaces or
 * braces in a name would corrupt them), and Redis Cluster hashes only what is
 * inside the first braces: every key of one workflow's queue lands in one
 * slot — BullMQ's scripts touch several keys of a queue at once, which a
 * cluster allows only within a slot — while different workflows land on
 * different slots, spread over the shards.
 */
export function queueName(workflow: string): string {
  if (RESERVED_WORKFLOWS.has(workflow)) {
    throw new UsageError(`workflow name '${workflow}' is reserved`, {
      hint: "'.', '..' and 'servers' name directories of the database itself; pick another name",
    });
  }
  if (!WORKFLOW_RE.test(workflow)) {
    throw new UsageError(`workflow name '${workflow}' cannot be used as a queue name`, {
      hint: "use 1-100 letters, digits, '_', '.' or '-'",
    });
  }
  return `{${workflow}}`;
}

export function isValidWorkflow(workflow: string): boolean {
  return WORKFLOW_RE.test(workflow) && !RESERVED_WORKFLOWS.has(workflow);
}
