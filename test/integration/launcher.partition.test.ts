import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { waitFor } from "../support/context.js";
import { type CliDb } from "../support/cli.js";
import { startLauncher, exitedWithin, type LauncherProc } from "../support/launcher.js";
import { marksScript, runsOf, assertFencedThenRunOnce } from "../support/marks.js";
import { useCliFixture } from "../support/fixture.js";
import { makeNodes, type NetNode } from "../support/netns.js";
import { startMongo, startRedis, type ServerHandle } from "../../services/dbserver/servers.js";

/**
 * A partitioned node (DESIGN §6.2): a launcher in its own network namespace
 * loses its link to the servers for 2x its lease. Its job must die at its
 * fence deadline, a launcher on another node recovers and finishes it, and
 * the cut-off launcher, back on the network, writes nothing for it.
 */
const LEASE_MS = 3000;
let nodes: NetNode[] = [];
let redis: ServerHandle;
let mongo: ServerHandle;
let dbs: CliDb[] = [];
const launchers: LauncherProc[] = [];
const f = useCliFixture("partition", {
  // Servers of its own, listening on every address: the nodes reach them through their links.
  servers: async (dir) => {
    nodes = makeNodes(2);
    redis = await startRedis({ dir: join(dir, "redis"), host: "0.0.0.0", appendOnly: false });
    mongo = await startMongo({ dir: join(dir, "mongo"), host: "0.0.0.0", logFile: join(dir, "mongo.log") });
    return {
      mongoUrl: mongo.url,
      redisUrl: redis.url,
      stop: async () => {
        await Promise.all([redis.stop(), mongo.stop()]);
        for (const n of nodes) n.remove();
      },
    };
  },
});

describe("a launcher cut off from the servers", () => {
  before(async () => {
    // The same database, as each node reaches it.
    dbs = await Promise.all(nodes.map((n) => f.anotherDb({ mongoUrl: `mongodb://${n.hostIp}:${mongo.port}`, redisUrl: `redis://${n.hostIp}:${redis.port}` })));
  });
  after(async () => {
    for (const n of nodes) n.up();
    for (const l of launchers) {
      if (l.child.exitCode === null && l.child.signalCode === null) l.child.kill("SIGKILL");
      await l.exited;
    }
  });

  test("its link down for 2x the lease: the job is fenced, recovered and finished on another node once, never two at once; back online it writes nothing for it", async () => {
    const marks = join(f.dir, "job.marks");
    await f.balsam.apps.add({ name: "marks", executable: marksScript(f.dir, "marks", marks, 15) });
    const job = await f.balsam.jobs.add({ name: "cut", workflow: "CUT", application: "marks" });
    const env = { BALSAM_NODELIST: "node1", BALSAM_LEASE_TTL_MS: String(LEASE_MS), BALSAM_CLAIM_AFTER_MS: "1000" };
    const launch = (i: number) => {
      const l = startLauncher(["--wf-filter", "CUT", "--job-mode", "serial"], { ...dbs[i]!.env, ...env }, nodes[i]!.exec);
      launchers.push(l);
      return l;
    };
    const a = launch(0);
    await waitFor(async () => (await f.balsam.jobs.get(job._id)).lock !== null && runsOf(marks).length === 1, 30_000, "the job to run under node 0's lease");
    nodes[0]!.down();
    const b = launch(1);
    const cutAt = Date.now();
    await waitFor(() => Date.now() - cutAt >= 2 * LEASE_MS, 4 * LEASE_MS, "2 leases to pass");
    nodes[0]!.up();
    assert.equal(await exitedWithin(b, 90_000), 0, b.output());
    assert.equal(await exitedWithin(a, 90_000), 0, a.output());
    assertFencedThenRunOnce(marks, await f.balsam.jobs.get(job._id));
    assert.match(a.output(), /writing nothing for (it|them)/);
  });
});
