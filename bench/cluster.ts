import { makeCliDb } from "../test/support/cli.js";
import { ask, startRedisCluster } from "../test/support/redis-ha.js";
import { connect } from "../libs/client/index.js";
import { queueName } from "../libs/queue/index.js";
import { addNoops, benchLauncherProc, costsLine } from "./launcher.js";
import { num, removeAtEnd } from "./measure.js";
import { dropDatabase } from "../libs/store/index.js";

/**
 * Issue #25: the queues on a Redis Cluster (3 masters + 3 replicas, started
 * here) beside one Redis, in the same run: aggregate jobs/s of 4 launchers
 * over 2 and 4 workflows, and the Redis commands each master processed per
 * job (INFO stats, total_commands_processed, before and after): how evenly
 * per-workflow hash tags spread the work over the shards. Replicas are left
 * out: they apply the masters' stream, they serve no client.
 */

const f1 = (x: number) => x.toFixed(1);

interface Shard {
  port: number;
  password: string | undefined;
}

async function commandsProcessed(shards: Shard[]): Promise<number[]> {
  return Promise.all(
    shards.map(async (s) => {
      const info = String(await ask(s.port, s.password ?? "", "INFO", "stats"));
      return Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? NaN);
    }),
  );
}

/** One shape on one deployment: n jobs over `workflows`, 4 launchers consuming all of them. */
async function runShape(mongoUrl: string, redisUrl: string, shards: Shard[], label: string, workflows: string[], n: number): Promise<void> {
  const tag = `bench_cl_${workflows.length}_${label.startsWith("cluster") ? "c" : "s"}`;
  const db = await makeCliDb(mongoUrl, redisUrl, tag, tag);
  const b = await connect({ dbPath: db.dir });
  try {
    await b.apps.add({ name: "true", executable: "/bin/true" });
    const per = Math.floor(n / workflows.length);
    for (const wf of workflows) await addNoops(b, wf, per, "true", 4);
    const before = await commandsProcessed(shards);
    const t = performance.now();
    const ls = Array.from({ length: 4 }, () => benchLauncherProc(["--wf-exact", workflows.join(","), "--job-mode", "serial"], { ...db.env, BALSAM_NODELIST: "node1" }));
    const codes = await Promise.all(ls.map((l) => l.exited));
    const s = (performance.now() - t) / 1000;
    const after = await commandsProcessed(shards);
    const total = per * workflows.length;
    const finished = await b.jobs.filter({ state: "JOB_FINISHED" }).count();
    const perShard = after.map((a, i) => (a - before[i]!) / total);
    const sum = perShard.reduce((x, y) => x + y, 0);
    console.log(`${label}, ${workflows.length} workflows: ${f1(total / s)} jobs/s (${f1(s)} s), ${finished} of ${total} finished, launchers exit ${codes.join(",")}`);
    console.log(`  Redis commands per job: ${f1(sum)} in all; per shard ${perShard.map((x, i) => `:${shards[i]!.port} ${f1(x)}`).join(", ")}; busiest shard ${f1((100 * Math.max(...perShard)) / sum)}% of them`);
    ls.forEach((l, i) => console.log(`  launcher ${i + 1}: ${costsLine(l)}`));
    await dropDatabase(b.store);
  } finally {
    await b.close();
    removeAtEnd(() => db.cleanup());
  }
}

export async function benchCluster(mongoUrl: string, singleRedisUrl: string): Promise<void> {
  const n = num("BENCH_CLUSTER_JOBS", 8000);
  if (n <= 0) return;
  console.log(`\n## Redis Cluster (3 masters + 3 replicas) beside one Redis: ${n} no-op jobs, 4 serial launchers consuming every workflow, node_packing_count 4`);
  const single = new URL(singleRedisUrl);
  const singleShards = [{ port: Number(single.port), password: single.password ? decodeURIComponent(single.password) : undefined }];
  const cluster = await startRedisCluster();
  try {
    const masters = (await cluster.topology()).filter((x) => x.flags.includes("master") && x.slots.length > 0);
    const clusterShards = masters.map((m) => ({ port: m.port, password: cluster.password }));
    // Fixed names, hashed as users' names are: where each lands is printed, not chosen.
    for (const count of [2, 4]) {
      const wfs = Array.from({ length: count }, (_, i) => `BW${count}_${i}`);
      const homes = await Promise.all(
        wfs.map(async (wf) => {
          const slot = Number(await ask(masters[0]!.port, cluster.password, "CLUSTER", "KEYSLOT", queueName(wf)));
          return `${wf} → :${masters.find((m) => m.slots.some(([a, z]) => slot >= a && slot <= z))?.port} (slot ${slot})`;
        }),
      );
      console.log(`\n${count} workflows; on the cluster: ${homes.join(", ")}`);
      await runShape(mongoUrl, singleRedisUrl, singleShards, "one Redis", wfs, n);
      await runShape(mongoUrl, cluster.url, clusterShards, "cluster", wfs, n);
    }
  } finally {
    await cluster.stop();
  }
}
