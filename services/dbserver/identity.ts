import { readFileSync, readlinkSync } from "node:fs";
import { hostname } from "node:os";

/**
 * Who a process is, beyond its pid: the machine and boot it runs in, when it
 * started (clock ticks since boot, /proc/<pid>/stat field 22) and its
 * executable. A pid in server-info.json is signalled only when all of these
 * still match — after a reboot or pid reuse the number names an innocent
 * process (the first round killed two `sleep`s that way).
 */
export interface ProcessIdentity {
  machine: string;
  bootId: string;
  startTicks: string;
  exe: string;
}

function bootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "";
  }
}

/** The identity of a live process on this machine, or undefined when it cannot be read (gone, or no /proc). */
export function processIdentity(pid: number): ProcessIdentity | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const startTicks = rest[19] ?? "";
    return { machine: hostname(), bootId: bootId(), startTicks, exe: readlinkSync(`/proc/${pid}/exe`) };
  } catch {
    return undefined;
  }
}

/**
 * True when `pid` is still the process recorded as `was`. A record without an
 * identity (written by an older version) is never trusted.
 */
export function isSameProcess(pid: number, was: Partial<ProcessIdentity> | undefined): boolean {
  if (!pid || !was?.startTicks || !was.bootId || !was.exe) return false;
  const now = processIdentity(pid);
  return now !== undefined && now.machine === was.machine && now.bootId === was.bootId && now.startTicks === was.startTicks && now.exe === was.exe;
}
