import { UsageError } from "../errors/index.js";
import type { Job } from "./job.js";

/** The longest file name ext4, xfs, Lustre and GPFS take, in bytes. */
const NAME_MAX = 255;
/** `_` and the first 8 characters of the id follow the name in the directory's name. */
const ID_SUFFIX = 9;
/** Longest job name whose working directory name fits in NAME_MAX (its `.out` file is shorter). */
export const MAX_JOB_NAME_LENGTH = NAME_MAX - ID_SUFFIX;

/** A job's name as used in file names: one `_` per character outside `A-Za-z0-9_.-`, so its length is the name's. */
export function fileSafeName(name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]/g, "_");
}

/** `<name>_<first 8 of id>`, the last part of a job's working directory, as Balsam lays it out. */
export function jobDirName(job: Pick<Job, "_id" | "name">): string {
  checkJobName(job.name);
  return `${fileSafeName(job.name)}_${job._id.slice(0, 8)}`;
}

/** `<name>.out`: the job's stdout and stderr, in its working directory. */
export function jobOutFileName(name: string): string {
  return `${fileSafeName(name)}.out`;
}

/** Refuses a name whose working directory could not be made (ENAMETOOLONG). */
export function checkJobName(name: string): void {
  if (name.length > MAX_JOB_NAME_LENGTH) {
    throw new UsageError(`job name is ${name.length} characters long; at most ${MAX_JOB_NAME_LENGTH} fit in a working directory name`, { hint: "give a shorter --name" });
  }
}
