import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, statSync } from "node:fs";
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
 * Every match is linked, as 0.x does (transitions.py:320-345): a name already
 * taken by another parent's file gets `_<first 8 of the parent's id>`, so a
 * reduce over several parents' `square.dat` sees them all (`square.dat*`). A
 * link left by an earlier attempt of this stage-in is kept, not doubled.
 */
export function stageIn(workdir: string, job: Job, parents: ReadonlyArray<{ id: string; dir: string }>): void {
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
  for (const { id, dir } of parents) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).sort()) {
      // A parent's own output log is not an input.
      if (f.endsWith(".out") || !match(f)) continue;
      const src = join(dir, f);
      const plain = join(workdir, f);
      const target = linksTo(plain, src) || !lexists(plain) ? plain : `${plain}_${id.slice(0, 8)}`;
      // 0.x skips a name taken twice over (FileExistsError) rather than fail the job.
      if (!lexists(target)) symlinkSync(src, target);
    }
  }
}

function lexists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function linksTo(link: string, src: string): boolean {
  try {
    return readlinkSync(link) === src;
  } catch {
    return false;
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
