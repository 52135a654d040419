import { readFileSync } from "node:fs";

/**
 * User + system CPU a live process has used, in ms, from /proc; 0 when it
 * cannot be read (gone, reaped, or no /proc). Counted in clock ticks, 100 a
 * second on Linux.
 */
export function cpuMsOf(pid: number | undefined): number {
  return ticksMs(pid, 11);
}

/**
 * User + system CPU of the children a live process has waited for, in ms
 * (cutime and cstime): a spawn helper's jobs, once they have ended.
 */
export function childrenCpuMsOf(pid: number | undefined): number {
  return ticksMs(pid, 13);
}

/** Two adjacent tick fields of /proc/PID/stat, counted after the command name, in ms. */
function ticksMs(pid: number | undefined, at: number): number {
  if (pid === undefined || pid <= 0) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 (rest[11], rest[12]); cutime and cstime 16 and 17.
    return (Number(rest[at]) + Number(rest[at + 1])) * 10;
  } catch {
    return 0;
  }
}
