import { cpSync, existsSync, mkdirSync, readdirSync, symlinkSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import picomatch from "picomatch";
import type { Job } from "../../libs/models/index.js";

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
