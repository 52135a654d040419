/**
 * The polynome2 search as the machinery sees it: AMBS's loop (examples/
 * polynome2/search.ts) against a persistent serial launcher, with a no-op
 * evaluation (`echo "DH-OUTPUT: 0"`), so the figure is Balsam's overhead per
 * evaluation rather than the objective's. Printed beside the raw rate of the
 * same no-op spawned from Node at the same concurrency, in the same run.
 * Latency: from the launcher recording JOB_FINISHED (its stateHistory
 * timestamp) to the result reaching the search's process through Redis
 * ("delivered"), and to the search loop taking it ("consumed": later when the
 * loop is busy adding the next evaluations).
 *
 * Sizes: BENCH_SEARCH_EVALS (default 1000), BENCH_SEARCH_IN_FLIGHT (default 4, as AMBS).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeCliDb } from "../test/support/cli.js";
import { connect, FINISHED_CHANNEL, parseFinished } from "../libs/client/index.js";
import { waitFor } from "../services/dbserver/servers.js";
import { num, pct, rawSpawnRate, removeAtEnd } from "./measure.js";
import { benchLauncherProc } from "./launcher.js";
import { Problem } from "../examples/polynome2/problem.js";
import { runSearch } from "../examples/polynome2/search.js";
import { dropDatabase, setJobFieldsIf } from "../libs/store/index.js";




export async function benchSearch(mongoUrl: string, redisUrl: string): Promise<void> {
  const n = num("BENCH_SEARCH_EVALS", 1000);
  const inFlight = num("BENCH_SEARCH_IN_FLIGHT", 4);
  console.log(`\n## polynome2 search (AMBS loop), ${n} evaluations of a no-op objective, ${inFlight} in flight, one serial launcher`);
  const scratch = mkdtempSync(join(tmpdir(), "balsam-bench-search-"));
  const noop = join(scratch, "noop.sh");
  writeFileSync(noop, '#!/bin/sh\necho "DH-OUTPUT: 0"\n', { mode: 0o755 });
  const db = await makeCliDb(mongoUrl, redisUrl, "bench_search", "bench_search");
  const b = await connect({ dbPath: db.dir });
  const launcher = benchLauncherProc(["--wf-filter", "SEARCH", "--job-mode", "serial", "--persistent"], { ...db.env, BALSAM_NODELIST: "node1" });
  try {
    await b.apps.add({ name: "noop", executable: noop });
    await waitFor(() => launcher.output().includes("started:"), 60_000, "the launcher to start");
    const received = new Map<string, number>();
    const delivered = new Map<string, number>();
    // Same subscriber connection and dispatch as the search's own watcher.
    // One announcement may carry a bulk's jobs (an array): each is delivered when it arrives.
    const unsubscribe = await b.queues.subscribe(FINISHED_CHANNEL, (msg) => {
      const at = Date.now();
      for (const { id } of parseFinished(msg)) if (!delivered.has(id)) delivered.set(id, at);
    });
    const t = performance.now();
    const outcome = await runSearch({
      balsam: b,
      problem: Problem,
      runApp: "noop",
      workflow: "SEARCH",
      maxEvals: n,
      inFlight,
      seed: 1,
      // All in flight fit on the launcher's one node.
      nodePackingCount: inFlight,
      onResult: (r, at) => received.set(r.id, at),
    });
    const s = (performance.now() - t) / 1000;
    await unsubscribe();
    const raw = await rawSpawnRate(noop, Math.min(n, 2000), inFlight);
    const jobs = await b.jobs.filter({ ids: [...received.keys()] }).list({ projection: { stateHistory: 1 } });
    const since = (m: Map<string, number>) =>
      jobs.flatMap((j) => {
        const at = j.stateHistory.find((h) => h.state === "JOB_FINISHED")?.at.getTime();
        const got = m.get(j._id);
        return at === undefined || got === undefined ? [] : [got - at];
      });
    const show = (xs: number[]) => `p50 ${pct(xs, 50)} ms, p99 ${pct(xs, 99)} ms, max ${Math.max(...xs)} ms (over ${xs.length})`;
    console.log(`evaluations: ${outcome.evaluations} (${outcome.failed} failed) in ${s.toFixed(1)} s: ${(outcome.evaluations / s).toFixed(1)} evaluations/s`);
    console.log(`raw no-op spawn from Node at ${inFlight} in flight: ${raw.toFixed(1)}/s; ratio ${(outcome.evaluations / s / raw).toFixed(3)}`);
    console.log(`result latency from JOB_FINISHED recorded: delivered to the search process ${show(since(delivered))}`);
    console.log(`                                          consumed by the search loop   ${show(since(received))}`);
    // What delivery is made of: the launcher's MongoDB write (JOB_FINISHED is stamped before it) and one Redis publish.
    const writes: number[] = [];
    for (const j of jobs.slice(0, 200)) {
      const w0 = performance.now();
      await setJobFieldsIf(b.store, { id: j._id, state: "JOB_FINISHED" }, { "data.probe": 1 });
      writes.push(performance.now() - w0);
    }
    const hops: number[] = [];
    let sentAt = 0;
    let got: (() => void) | undefined;
    const off = await b.queues.subscribe("bench-probe", () => {
      hops.push(performance.now() - sentAt);
      got?.();
    });
    for (let i = 0; i < 200; i++) {
      const arrived = new Promise<void>((r) => (got = r));
      sentAt = performance.now();
      await b.queues.publish("bench-probe", "x");
      await arrived;
    }
    await off();
    const f1 = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(1)} ms, p99 ${pct(xs, 99).toFixed(1)} ms`;
    console.log(`reference, same servers now: one job update by _id ${f1(writes)}; Redis publish → subscriber ${f1(hops)}`);
  } finally {
    launcher.child.kill("SIGTERM");
    await launcher.exited;
    await dropDatabase(b.store).catch(() => undefined);
    await b.queues.obliterate("SEARCH").catch(() => undefined);
    await b.close();
    removeAtEnd(() => db.cleanup());
    rmSync(scratch, { recursive: true, force: true });
  }
}
