import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Job } from "../../libs/models/index.js";

/**
 * A job that leaves marks: `start PID T`, `tick PID T` every 0.1 s, `end PID T`
 * (T from /proc/uptime: one clock for every process, which libfaketime does
 * not shift). A process's life is known to within a tick, killed or not, so
 * two runs of one job overlap exactly when their [start, last mark]
 * intervals do (less than a tick of overlap can hide).
 */
export function marksScript(dir: string, name: string, marks: string, seconds: number): string {
  const p = join(dir, `${name}.sh`);
  const body = [
    "#!/bin/bash",
    `m() { read -r up _ < /proc/uptime; echo "$1 $$ $up" >> ${marks}; }`,
    "m start",
    `for ((i = 0; i < ${seconds * 10}; i++)); do sleep 0.1; m tick; done`,
    "m end",
  ];
  writeFileSync(p, body.join("\n") + "\n", { mode: 0o755 });
  return p;
}

export interface Run {
  pid: number;
  start: number;
  last: number;
  ended: boolean;
}

/** The runs a marks file records, in the order they started. */
export function runsOf(marks: string): Run[] {
  const runs = new Map<number, Run>();
  const text = existsSync(marks) ? readFileSync(marks, "utf8") : "";
  for (const line of text.split("\n")) {
    const [what, pid, t] = line.split(" ");
    if (!what || !pid || !t) continue;
    const r = runs.get(Number(pid)) ?? { pid: Number(pid), start: Number(t), last: Number(t), ended: false };
    r.last = Math.max(r.last, Number(t));
    if (what === "end") r.ended = true;
    runs.set(r.pid, r);
  }
  return [...runs.values()].sort((a, b) => a.start - b.start);
}

/** Pairs of runs alive at the same time, described; empty when none. */
export function overlaps(runs: Run[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < runs.length; i++) {
    for (let j = i + 1; j < runs.length; j++) {
      const [a, b] = [runs[i]!, runs[j]!];
      if (b.start <= a.last) out.push(`pid ${a.pid} [${a.start}, ${a.last}] and pid ${b.pid} [${b.start}, ${b.last}] overlap by ${(a.last - b.start).toFixed(2)} s`);
    }
  }
  return out;
}

/**
 * What a fenced job must show once its launcher is back: two runs, never at
 * once, one of them to its end; recorded finished once; no "fenced:" write of
 * the fenced launcher over the run that replaced it; the fence said in the
 * job's output file.
 */
export function assertFencedThenRunOnce(marks: string, job: Job): void {
  const runs = runsOf(marks);
  assert.deepEqual(overlaps(runs), [], readFileSync(marks, "utf8"));
  assert.equal(runs.length, 2, `a run before the fence and one after: ${JSON.stringify(runs)}`);
  assert.equal(runs.filter((x) => x.ended).length, 1, "the job ran to its end exactly once");
  assert.equal(job.state, "JOB_FINISHED", JSON.stringify(job.stateHistory));
  assert.equal(job.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1);
  assert.ok(!job.stateHistory.some((h) => h.message.startsWith("fenced:")), JSON.stringify(job.stateHistory));
  const out = readFileSync(join(job.workdir, `${job.name}.out`), "utf8");
  assert.match(out, /^balsam: fenced at .*: the launcher could not renew this job's lease in time/m);
}
