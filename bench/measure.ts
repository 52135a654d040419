import { spawn } from "node:child_process";

/** Shared by the benchmarks: sizes from the environment, percentiles, the raw spawn limit. */
export const num = (name: string, d: number): number => (process.env[name] ? Number(process.env[name]) : d);

const atEnd: Array<() => void> = [];

/**
 * Removes a run's directories when the whole bench ends, not when its part
 * does: ext4 passes over the inodes freed in the last moments when it makes
 * a file, so each job directory and output file made right after thousands
 * were deleted cost the spawn helper 0.2–0.3 ms of CPU instead of 0.01–0.04
 * (measured here), and the part after a deletion ran the slower (the peers
 * after the launcher's 140,000 jobs: its helper 0.13 → 0.40 ms a job).
 */
export function removeAtEnd(remove: () => void): void {
  atEnd.push(remove);
}

/** What removeAtEnd was handed (run.ts, once every part is done). */
export function removeNow(): void {
  for (const r of atEnd.splice(0)) r();
}

export function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

/** Starts of `file` per second from Node with `concurrency` in flight: the ceiling for no-op jobs. */
export async function rawSpawnRate(file: string, n: number, concurrency: number): Promise<number> {
  let next = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        await new Promise<void>((r) => spawn(file, [], { stdio: "ignore" }).on("exit", () => r()));
      }
    }),
  );
  return n / ((performance.now() - t) / 1000);
}

/**
 * Starts of `file` per second through the launcher's spawn helper
 * (native/balsam-spawn: vfork, as Python's subprocess does), `concurrency`
 * in flight: the ceiling of the way our launcher starts processes, without
 * the launcher. Undefined when the helper is not built.
 */
export async function rawHelperSpawnRate(file: string, n: number, concurrency: number): Promise<{ rate: number; jobsCpuMsPerJob: number } | undefined> {
  const { HelperSpawner, helperPath } = await import("../services/launcher/spawner.js");
  const path = helperPath();
  if (!path) return undefined;
  const helper = new HelperSpawner(path, () => undefined);
  let next = 0;
  const t = performance.now();
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          next++;
          await new Promise<void>((r) => helper.run({ argv: [file], cwd: "/", env: {}, outFile: "/dev/null", mkdir: false }, (m) => m.t !== "started" && r()));
        }
      }),
    );
    const rate = n / ((performance.now() - t) / 1000);
    // The jobs' own CPU (the helper's reaped children): what one exec costs on this machine, beside which ours is read.
    return { rate, jobsCpuMsPerJob: helper.jobsCpuMs() / n };
  } finally {
    await helper.close();
  }
}
