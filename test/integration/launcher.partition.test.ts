import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor, uniqueName } from "../support/context.js";
import { makeCliDb, type CliDb } from "../support/cli.js";
import { startLauncher, exitedWithin, type LauncherProc } from "../support/launcher.js";
import { marksScript, runsOf, assertFencedThenRunOnce } from "../support/marks.js";
import { makeNodes, type NetNode } from "../support/netns.js";
import { startMongo, startRedis, type ServerHandle } from "../../services/dbserver/servers.js";
import { connect, type Balsam } from "../../libs/client/index.js";

/**
 * A partitioned node (DESIGN §6.2): a launcher in its own network namespace
 * loses its link to the servers for 2x its lease. Its job must die at its
 * fence deadline, a launcher on another node recovers and finishes it, and
 * the cut-off launcher, back on the network, writes nothing for it.
 */
const LEASE_MS = 3000;
let servers: ServerHandle[] = [];
let nodes: NetNode[] = [];
let root: string;
let here: CliDb;
let dbs: CliDb[] = [];
let balsam: Balsam;
const launchers: LauncherProc[] = [];

describe("a launcher cut off from the servers", () => {
  before(async () => {
    root = mkdtempSync(join(tmpdir(), "balsam-partition-"));
    nodes = makeNodes(2);
    // Servers of its own, listening on every address: the nodes reach them through their links.
    servers = [await startRedis({ dir: join(root, "redis"), host: "0.0.0.0", appendOnly: false }), await startMongo({ dir: join(root, "mongo"), host: "0.0.0.0", logFile: join(root, "mongo.log") })];
    const [redis, mongo] = servers as [ServerHandle, ServerHandle];
    const [dbName, prefix] = [uniqueName("partition"), uniqueName("partition")];
    here = await makeCliDb(mongo.url, redis.url, dbName, prefix);
    // The same database, as each node reaches it.
    dbs = await Promise.all(nodes.map((n) => makeCliDb(`mongodb://${n.hostIp}:${mongo.port}`, `redis://${n.hostIp}:${redis.port}`, dbName, prefix)));
    balsam = await connect({ dbPath: here.dir });
  });
  after(async () => {
    for (const n of nodes) n.up();
    for (const l of launchers) {
      if (l.child.exitCode === null && l.child.signalCode === null) l.child.kill("SIGKILL");
      await l.exited;
    }
    await balsam?.close();
    for (const d of [here, ...dbs]) d?.cleanup();
    await Promise.all(servers.map((s) => s.stop()));
    for (const n of nodes) n.remove();
    rmSync(root, { recursive: true, force: true });
  });

  test("its link down for 2x the lease: the job is fenced, recovered and finished on another node once, never two at once; back online it writes nothing for it", async () => {
    const marks = join(root, "job.marks");
    await balsam.apps.add({ name: "marks", executable: marksScript(root, "marks", marks, 15) });
    const job = await balsam.jobs.add({ name: "cut", workflow: "CUT", application: "marks" });
    const env = { BALSAM_NODELIST: "node1", BALSAM_LEASE_TTL_MS: String(LEASE_MS), BALSAM_CLAIM_AFTER_MS: "1000" };
    const launch = (i: number) => {
      const l = startLauncher(["--wf-filter", "CUT", "--job-mode", "serial"], { ...dbs[i]!.env, ...env }, nodes[i]!.exec);
      launchers.push(l);
      return l;
    };
    const a = launch(0);
    await waitFor(async () => (await balsam.jobs.get(job._id)).lock !== null && runsOf(marks).length === 1, 30_000, "the job to run under node 0's lease");
    nodes[0]!.down();
    const b = launch(1);
    const cutAt = Date.now();
    await waitFor(() => Date.now() - cutAt >= 2 * LEASE_MS, 4 * LEASE_MS, "2 leases to pass");
    nodes[0]!.up();
    assert.equal(await exitedWithin(b, 90_000), 0, b.output());
    assert.equal(await exitedWithin(a, 90_000), 0, a.output());
    assertFencedThenRunOnce(marks, await balsam.jobs.get(job._id));
    assert.match(a.output(), /writing nothing for (it|them)/);
  });
});
