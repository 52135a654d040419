import { dirname, resolve } from "node:path";
import { jobDirName, type Job } from "../models/index.js";
import { isValidWorkflow } from "../queue/names.js";

/**
 * `<db>/data/<workflow>/<name>_<first 8 of id>`, as Balsam lays it out; 0.x
 * computes it for any job, run or not (`models.py` `working_directory`).
 */
export function workdirFor(dbPath: string, job: Pick<Job, "_id" | "workflow" | "name">): string {
  const wfDir = resolve(dbPath, "data", job.workflow);
  const dir = resolve(wfDir, jobDirName(job));
  // Checked after resolving: a job stored before workflow names were checked
  // (or written by another client) must not reach outside its workflow's directory.
  const data = resolve(dbPath, "data");
  if (!isValidWorkflow(job.workflow) || dirname(wfDir) !== data || dirname(dir) !== wfDir) {
    throw new Error(`job ${job._id}: workflow '${job.workflow}' does not name a directory under ${data}`);
  }
  return dir;
}
