import type { Store } from "../../libs/store/index.js";
import type { LauncherSummary } from "./completion.js";

/**
 * What the jobs cost this launcher: database commands and CPU per job
 * ended here, the figures that decide how many launchers one database and
 * one node can feed (DESIGN §7).
 */
export function costs(store: Store, summary: LauncherSummary, cpuAtStart: NodeJS.CpuUsage, spawnHelperCpuMs: number, watchdogCpuMs = 0, jobsCpuMs = 0): string {
  const n = summary.finished + summary.failed + summary.restarted + summary.killed;
  const cpu = process.cpuUsage(cpuAtStart);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const per = (x: number) => (n > 0 ? (x / n).toFixed(2) : "-");
  const byName = [...store.commands.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ");
  const spawn = spawnHelperCpuMs > 0 ? `; spawn helper CPU ${spawnHelperCpuMs.toFixed(0)} ms (${per(spawnHelperCpuMs)} ms per job)` : "";
  // The jobs' own processes beside ours: on a VM where an exec is dear, they bound the rate before the launcher does.
  const jobs = jobsCpuMs > 0 ? `; its jobs' processes CPU ${jobsCpuMs.toFixed(0)} ms (${per(jobsCpuMs)} ms per job)` : "";
  const watchdog = watchdogCpuMs > 0 ? `; watchdog CPU ${watchdogCpuMs.toFixed(0)} ms (${per(watchdogCpuMs)} ms per job)` : "";
  return `${store.commandCount()} database commands (${per(store.commandCount())} per job: ${byName || "none"}), CPU ${cpuMs.toFixed(0)} ms (${per(cpuMs)} ms per job)${spawn}${jobs}${watchdog}`;
}

/**
 * How long the launcher's nodes stood empty with no job waiting for them
 * (NodePool.emptyShare): short jobs whose next ones were not in hand in time.
 * 5,000 no-op jobs on 2 cores: 9.8% without the wake of BullMQ's fetch loop
 * (consumer.ts), 0.0% with it.
 */
export function emptySlots(share: number | undefined): string {
  return share === undefined ? "" : `; its nodes stood empty with no job waiting ${(100 * share).toFixed(1)}% of the time`;
}
