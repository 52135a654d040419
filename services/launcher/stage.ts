import { cpSync, existsSync, mkdirSync, readdirSync, symlinkSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import picomatch from "picomatch";
import { jobDirName, type Job } from "../../libs/models/index.js";
import { isValidWorkflow } from "../../libs/queue/names.js";

/** `<db>/data/<workflow>/<name>_<first 8 of id>`, as Balsam lays it out. */
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

/** Local paths only: `file:///x`, `local:/x` or a bare path. Remote transfer is not built in. */
function localPath(url: string): string {
  if (url.startsWith("file://")) return fileURLToPath(url);
  if (url.startsWith("local:")) return url.slice("local:".length);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) throw new Error(`unsupported transfer URL '${url}' (only local paths and file:// are supported)`);
  return url;
}

/**
 * Stage in: copy from a local `stage_in_url`, then symlink the parents' files
 * matching `input_files` (space-separated globs) into the working directory.
 */
export function stageIn(workdir: string, job: Job, parentDirs: string[]): void {
  mkdirSync(workdir, { recursive: true });
  if (job.stageInUrl) {
    const src = resolve(localPath(job.stageInUrl));
    if (!existsSync(src)) throw new Error(`stage-in source ${src} does not exist`);
    const dest = statSync(src).isDirectory() ? workdir : join(workdir, basename(src));
    cpSync(src, dest, { recursive: true });
  }
  const patterns = job.inputFiles.trim().split(/\s+/).filter(Boolean);
  if (patterns.length === 0) return;
  const match = picomatch(patterns, { dot: false });
  for (const dir of parentDirs) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) {
      // A parent's own output log is not an input.
      if (f.endsWith(".out") || !match(f)) continue;
      const target = join(workdir, f);
      if (!existsSync(target)) symlinkSync(join(dir, f), target);
    }
  }
}

/** Stage out: copy files matching `stage_out_files` to a local `stage_out_url`. */
export function stageOut(workdir: string, job: Job): number {
  if (!job.stageOutUrl || !job.stageOutFiles.trim()) return 0;
  const dest = resolve(localPath(job.stageOutUrl));
  mkdirSync(dest, { recursive: true });
  const match = picomatch(job.stageOutFiles.trim().split(/\s+/));
  let n = 0;
  for (const f of readdirSync(workdir)) {
    if (!match(f)) continue;
    cpSync(join(workdir, f), join(dest, f), { recursive: true });
    n++;
  }
  return n;
}
