import type { Balsam } from "../libs/client/index.js";
import { listQueuedLaunches } from "../libs/store/index.js";
import { refreshLaunchStates } from "../services/service/index.js";
import { note, printJson, printLines, table } from "./format.js";

/** The columns of `balsam ls queues`, in order. */
export const QUEUE_COLUMNS = ["id", "scheduler_id", "queue", "project", "nodes", "minutes", "mode", "wf_filter", "state", "submitted"] as const;

function when(d: Date): string {
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
}

/**
 * `balsam ls queues`: the recorded launcher batch jobs, oldest first, with
 * their states refreshed from the scheduler first. A scheduler that cannot be
 * asked is said on stderr and its launches show their last known state.
 */
export async function listQueues(client: Balsam, json: boolean): Promise<void> {
  const refreshed = await refreshLaunchStates(client.store);
  for (const e of refreshed.errors) note(`${e}; showing the last known states`);
  const docs = await listQueuedLaunches(client.store);
  const rows = docs.map((d) => ({
    id: d._id,
    scheduler: d.scheduler,
    scheduler_id: d.schedulerId,
    queue: d.queue,
    project: d.project,
    nodes: d.nodes,
    minutes: d.wallTimeMinutes,
    mode: d.jobMode,
    wf_filter: d.wfFilter,
    state: d.state,
    submitted: d.submittedAt.toISOString(),
    script: d.scriptPath,
  }));
  if (json) {
    printJson(rows);
    return;
  }
  const cells = rows.map((r) => ({
    ...Object.fromEntries(QUEUE_COLUMNS.map((c) => [c, String(r[c])])),
    wf_filter: r.wf_filter.length ? r.wf_filter.join(",") : "(all)",
    submitted: when(new Date(r.submitted)),
  }));
  printLines(table(QUEUE_COLUMNS, cells));
}
