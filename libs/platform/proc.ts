import { readFileSync } from "node:fs";

/**
 * User + system CPU a live process has used, in ms, from /proc; 0 when it
 * cannot be read (gone, reaped, or no /proc). Counted in clock ticks, 100 a
 * second on Linux.
 */
export function cpuMsOf(pid: number | undefined): number {
  if (pid === undefined || pid <= 0) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime, fields 14 and 15.
    return (Number(rest[11]) + Number(rest[12])) * 10;
  } catch {
    return 0;
  }
}
