import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { coerceError, type Balsam } from "../../libs/client/index.js";
import { listRunningLaunchers } from "../../libs/store/views.js";
import type { FinishedFeed, JobCounter } from "./live.js";

/**
 * The Prometheus metrics of one database. Gauges are read from MongoDB and
 * BullMQ when scraped (so two `balsam web` processes report the same
 * numbers); counters and histograms count what this process heard on the
 * "finished" channel since it started, which is what `rate()` needs.
 */
export function createMetrics(balsam: Balsam, feed: FinishedFeed, counter: JobCounter, opts: { leaseTtlMs: number }): Registry {
  const registry = new Registry();
  new Gauge({
    name: "balsam_jobs",
    help: "Jobs per workflow and state (counted at most twice as long ago as a count takes)",
    labelNames: ["workflow", "state"],
    registers: [registry],
    async collect() {
      // A count as old as two counts take is as good as a new one that would arrive that late.
      const body = await counter.get(2 * counter.lastDurationMs);
      this.reset();
      for (const [workflow, states] of Object.entries(body.byWorkflow)) {
        for (const [state, n] of Object.entries(states)) this.set({ workflow, state }, n ?? 0);
      }
    },
  });
  new Gauge({
    name: "balsam_queue_entries",
    help: "BullMQ entries per workflow queue and status (waiting, active, delayed, prioritized)",
    labelNames: ["workflow", "status"],
    registers: [registry],
    async collect() {
      this.reset();
      for (const wf of await balsam.queues.workflows()) {
        const c = await balsam.queues.queue(wf).getJobCounts("waiting", "active", "delayed", "prioritized");
        for (const [status, n] of Object.entries(c)) this.set({ workflow: wf, status }, n);
      }
    },
  });
  new Gauge({
    name: "balsam_launchers_alive",
    help: "Launchers recorded as running whose heartbeat is younger than the lease TTL",
    registers: [registry],
    async collect() {
      const cutoff = Date.now() - opts.leaseTtlMs;
      const ls = await listRunningLaunchers(balsam.store);
      this.set(ls.filter((l) => l.heartbeat.getTime() >= cutoff).length);
    },
  });
  const transitions = new Counter({
    name: "balsam_transitions_total",
    help: "Jobs reaching a final state, as announced by launchers since this server started",
    labelNames: ["state"],
    registers: [registry],
  });
  const runtime = new Histogram({
    name: "balsam_job_runtime_seconds",
    help: "Run time of the jobs that finished since this server started",
    buckets: [0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600],
    registers: [registry],
  });
  const latency = new Histogram({
    name: "balsam_result_latency_seconds",
    help: "From a job's final write to this server hearing the announcement (what a results stream adds to a run)",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [registry],
  });
  feed.onFinished((f) => {
    transitions.inc({ state: f.state });
    if (f.runtimeSeconds !== null && f.runtimeSeconds !== undefined) runtime.observe(f.runtimeSeconds);
    latency.observe(f.latencySeconds);
  });
  return registry;
}

/** The registry's text, or an error line for the caller to answer 500 with. */
export async function metricsText(registry: Registry): Promise<string> {
  try {
    return await registry.metrics();
  } catch (err) {
    throw new Error(`collecting the metrics failed: ${coerceError(err).message}`, { cause: err });
  }
}
