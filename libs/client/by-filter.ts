import { JOB_STATES, isFinal, type Job, type JobState } from "../models/index.js";
import { coerceError } from "../errors/index.js";
import type { JobFilter, JobsApi } from "./jobs.js";

/**
 * `killjob` and `modify` by selector (`--tag`, `--wf`, `--state`, …): the
 * one-job operations applied to every match, one job at a time, so each keeps
 * its own checks (a launcher's lease, the transition table) and one refusal
 * stops nothing but that job. Selections are what a user names on a command
 * line (a generation of a search, thousands of jobs); per job it costs a
 * read and a write, as `balsam modify ID` does.
 */

export interface PerJobResult {
  /** Jobs changed. */
  done: string[];
  /** Jobs left as they were, and why. */
  refused: Array<{ id: string; reason: string }>;
}

/** Kills every matching job not already final (and, with `recursive`, what depends on each). */
export async function killWhere(jobs: JobsApi, f: JobFilter, opts: { recursive?: boolean } = {}): Promise<PerJobResult> {
  const matched = await jobs.filter({ ...f, state: notFinal(f.state) }).list({ projection: { _id: 1, state: 1 }, sort: { createdAt: 1 } });
  const done = new Set<string>();
  const refused: PerJobResult["refused"] = [];
  for (const j of matched) {
    if (done.has(j._id)) continue; // killed already, as a descendant of an earlier match
    try {
      for (const id of await jobs.kill(j._id, { recursive: opts.recursive === true })) done.add(id);
    } catch (err) {
      refused.push({ id: j._id, reason: coerceError(err).message });
    }
  }
  return { done: [...done], refused };
}

/** Sets one field (or the state, through the transition table) on every matching job. */
export async function modifyWhere(jobs: JobsApi, f: JobFilter, change: { state: JobState; message?: string } | { set: Partial<Omit<Job, "_id" | "state" | "stateHistory" | "workflow">> }): Promise<PerJobResult> {
  const matched = await jobs.filter(f).list({ projection: { _id: 1 }, sort: { createdAt: 1 } });
  const done: string[] = [];
  const refused: PerJobResult["refused"] = [];
  for (const j of matched) {
    try {
      if ("state" in change) await jobs.setState(j._id, change.state, change.message ?? "set by balsam modify");
      else await jobs.modify(j._id, change.set);
      done.push(j._id);
    } catch (err) {
      refused.push({ id: j._id, reason: coerceError(err).message });
    }
  }
  return { done, refused };
}

/** The states a kill can change, within those the filter names. */
function notFinal(state: JobFilter["state"]): JobState[] | JobState {
  if (state === undefined) return JOB_STATES.filter((s) => !isFinal(s));
  return [state].flat().filter((s) => !isFinal(s));
}
