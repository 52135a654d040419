/**
 * A real Slurm: scripts/provision-slurm.sh installs and starts a one-node
 * cluster on this machine (partition `debug`; CI runs as root), and the
 * launcher batch jobs run on it.
 */
import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "../support/context.js";
import { BALSAM_BIN } from "../support/cli.js";
import { useCliFixture } from "../support/fixture.js";
import { lsQueues, lsQueuesJson, updateSettings } from "../support/schedulers.js";
import { coll } from "../../libs/store/collections.js";

const PROVISION = resolve(fileURLToPath(import.meta.url), "../../../../scripts/provision-slurm.sh");

const f = useCliFixture("slurm");
const { ctx } = f;

async function allFinished(wf: string): Promise<boolean> {
  const jobs = await f.balsam.jobs.filter({ workflow: wf }).list();
  return jobs.length > 0 && jobs.every((j) => j.state === "JOB_FINISHED");
}

describe("launchers submitted to a real Slurm", () => {
  before(async () => {
    execFileSync("bash", [PROVISION], { stdio: ["ignore", "ignore", "pipe"], timeout: 600_000 });
    updateSettings(f.db.dir, (s) => ({ ...s, scheduler: "slurm" }));
    await f.balsam.apps.add({ name: "echo", executable: "/bin/echo" });
  });

  test("submit-launch: Slurm runs the serial launcher and the workflow's jobs finish", async () => {
    await f.balsam.jobs.addMany(Array.from({ length: 12 }, (_, i) => ({ name: `task${i}`, workflow: "SLURM_WF", application: "echo", args: `DH-OUTPUT: ${i}`, nodePackingCount: 4 })));
    await f.balsam.jobs.add({ name: "other", workflow: "NOT_MINE", application: "echo" });
    const r = await f.db.run(["submit-launch", "-n", "1", "-q", "debug", "-t", "5", "-A", "test", "--job-mode", "serial", "--wf-filter", "SLURM_WF"]);
    assert.equal(r.code, 0, r.stderr);
    const launchId = r.stdout.trim();
    assert.match(r.stderr, /submitted to slurm as \d+/);
    const doc = await coll(ctx.store).queuedLaunches.findOne({ _id: launchId });
    assert.ok(doc);
    assert.match(doc.schedulerId, /^\d+$/);
    assert.deepEqual([doc.queue, doc.project, doc.nodes, doc.wallTimeMinutes, doc.jobMode, doc.wfFilter], ["debug", "test", 1, 5, "serial", ["SLURM_WF"]]);

    await waitFor(() => allFinished("SLURM_WF"), 180_000, "Slurm to run the launcher and the jobs to finish");
    for (const j of await f.balsam.jobs.filter({ workflow: "SLURM_WF" }).list()) assert.equal(j.data.result, Number(j.args.split(" ")[1]));
    assert.equal((await f.balsam.jobs.filter({ workflow: "NOT_MINE" }).list())[0]!.state, "READY", "the --wf-filter is honoured");

    await waitFor(async () => (await lsQueuesJson(f.db)).find((x) => x.id === launchId)?.state === "finished", 60_000, "ls queues to show the launch finished");
    const table = await lsQueues(f.db, false);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout.split("\n")[0]!, /^id\s+\| scheduler_id \| queue \| project \| nodes \| minutes \| mode\s+\| wf_filter \| state\s+\| submitted$/);
    assert.match(table.stdout, new RegExp(`^${launchId} \\| ${doc.schedulerId}\\s+\\| debug \\| test\\s+\\| 1\\s+\\| 5\\s+\\| serial \\| SLURM_WF\\s+\\| finished \\| \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d$`, "m"));

    const output = readFileSync(join(doc.launchDir!, "output.txt"), "utf8");
    assert.match(output, /started: serial mode on 1 node\(s\), workflows containing SLURM_WF, time limit 4 min/);
    assert.equal(readFileSync(join(doc.launchDir!, "exit-code"), "utf8").trim(), "0");
    assert.match(readFileSync(doc.scriptPath, "utf8"), /srun --ntasks-per-node=1 -N 1 -n 1 /);
  });

  test("balsam service submits the launcher itself, and stops cleanly on SIGTERM", async () => {
    updateSettings(f.db.dir, (s) => ({
      ...s,
      gpusPerNode: 2,
      service: { ...s.service, autoSubmit: true, queue: "debug", project: "test", maxQueuedLaunches: 1, maxNodes: 1, wallTimeMinutes: 5, minRunnableJobs: 1, jobMode: "serial", wfFilter: ["SVC_WF"], intervalSeconds: 1 },
    }));
    // Half of them take 1 of a node's 2 GPUs: 2 a node, so 4 × ½ + 4 × ¼ = 3 nodes of work.
    await f.balsam.jobs.addMany(Array.from({ length: 8 }, (_, i) => ({ name: `svc${i}`, workflow: "SVC_WF", application: "echo", args: String(i), nodePackingCount: 4, gpusPerRank: i % 2 })));
    const before = await coll(ctx.store).queuedLaunches.countDocuments();

    const svc: ChildProcess = spawn(process.execPath, [BALSAM_BIN, "service"], { env: { ...process.env, ...f.db.env }, stdio: ["ignore", "ignore", "pipe"] });
    let out = "";
    svc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number>((r) => svc.on("close", (code, sig) => r(code ?? (sig ? 128 : 1))));
    try {
      await waitFor(() => allFinished("SVC_WF"), 180_000, "the service's launch to finish the jobs");
      await waitFor(async () => (await coll(ctx.store).queuedLaunches.countDocuments({ submittedBy: "service", state: "finished" })) === 1, 60_000, "the service to see its launch finished");
    } finally {
      svc.kill("SIGTERM");
    }
    assert.equal(await exited, 0, out);
    const mine = await coll(ctx.store).queuedLaunches.find({ submittedBy: "service" }).toArray();
    assert.equal(mine.length, 1, `one launch, not one per pass: ${out}`);
    assert.equal(await coll(ctx.store).queuedLaunches.countDocuments(), before + 1);
    assert.deepEqual([mine[0]!.scheduler, mine[0]!.queue, mine[0]!.project, mine[0]!.nodes, mine[0]!.wallTimeMinutes, mine[0]!.wfFilter], ["slurm", "debug", "test", 1, 5, ["SVC_WF"]]);
    const log = readFileSync(join(f.db.dir, "log", "service.log"), "utf8");
    assert.match(log, /decision: 8 runnable job\(s\) need 3 node\(s\), 0 already queued: submitting 1 node\(s\) for 5 min/);
    assert.match(log, new RegExp(`submitted launch ${mine[0]!._id}: slurm id ${mine[0]!.schedulerId}`));
    assert.match(log, /→ finished/);
    assert.match(log, /stopping: received SIGTERM/);
    assert.equal(await coll(ctx.store).db.collection("serviceLock").countDocuments(), 0, "the lock is released");
  });
});
