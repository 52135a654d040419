import { spawn } from "node:child_process";

/** Shared by the benchmarks: sizes from the environment, percentiles, the raw spawn limit. */
export const num = (name: string, d: number): number => (process.env[name] ? Number(process.env[name]) : d);

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
