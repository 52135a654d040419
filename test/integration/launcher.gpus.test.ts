import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { useCliFixture } from "../support/fixture.js";

/**
 * GPUs as a resource (issue 26), with a real launcher. There is no GPU on
 * these machines: the node's GPU count is given through the override
 * (BALSAM_GPUS_PER_NODE), or found by a stand-in `nvidia-smi` script put
 * first on PATH that prints what a real one prints. Jobs only log the
 * devices they were handed; nothing here touches a device.
 */
const f = useCliFixture("gpus");

/** An app that appends `start|end <job id> <devices>` to `log`, holding its devices for a while in between. */
function deviceLogger(name: string, log: string, holdSeconds: number): string {
  return f.script(name, `echo "start $BALSAM_JOB_ID \${CUDA_VISIBLE_DEVICES-unset}" >> "${log}"\nsleep ${holdSeconds}\necho "end $BALSAM_JOB_ID \${CUDA_VISIBLE_DEVICES-unset}" >> "${log}"`);
}

interface Mark {
  what: "start" | "end";
  id: string;
  devices: string;
}

function marks(log: string): Mark[] {
  return readFileSync(log, "utf8")
    .trim()
    .split("\n")
    .map((line) => {
      const [what, id, devices] = line.split(" ");
      return { what: what as Mark["what"], id: id!, devices: devices! };
    });
}

/** A stand-in `nvidia-smi` in its own directory, printing `listing` for `-L`; returns a PATH with it first. */
function standInNvidiaSmi(dirName: string, listing: string): string {
  const bin = join(f.dir, dirName);
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, "listing.txt"), listing);
  writeFileSync(join(bin, "nvidia-smi"), `#!/bin/sh\n[ "$1" = "-L" ] || exit 9\ncat "${join(bin, "listing.txt")}"\n`, { mode: 0o755 });
  return `${bin}:${process.env.PATH ?? ""}`;
}

describe("GPUs on a launcher's nodes", () => {
  test("4 GPUs, packing 8, jobs of 1 and 2 GPUs: no device is in two running jobs at once; 2-GPU jobs get 2 distinct devices", async () => {
    const log = join(f.dir, "devices.log");
    await f.balsam.apps.add({ name: "gpu-logger", executable: deviceLogger("gpu-logger.sh", log, 0.4) });
    const specs = Array.from({ length: 12 }, (_, i) => ({ name: `g${i}`, workflow: "GPU4", application: "gpu-logger", nodePackingCount: 8, gpusPerRank: i % 3 === 0 ? 2 : 1 }));
    const jobs = await f.balsam.jobs.addMany(specs);
    const out = await f.launch("GPU4", { env: { BALSAM_GPUS_PER_NODE: "4" } });
    assert.match(out, /GPUs on each node: 0,1,2,3 \(from BALSAM_GPUS_PER_NODE\), handed to jobs in CUDA_VISIBLE_DEVICES/);
    for (const j of jobs) assert.equal((await f.balsam.jobs.get(j._id)).state, "JOB_FINISHED", j.name);

    // The log's lines are in the order the jobs wrote them (O_APPEND): a sweep
    // over them is a sweep over time.
    const wanted = new Map(jobs.map((j) => [j._id, j.gpusPerRank]));
    const inUse = new Map<string, string>(); // device → job holding it
    let mostAtOnce = 0;
    let jobsAtOnce = 0;
    let running = 0;
    for (const m of marks(log)) {
      const devices = m.devices.split(",");
      if (m.what === "start") {
        assert.equal(devices.length, wanted.get(m.id), `job ${m.id} asked for ${wanted.get(m.id)} GPU(s), got '${m.devices}'`);
        assert.equal(new Set(devices).size, devices.length, `job ${m.id} got a device twice: ${m.devices}`);
        for (const d of devices) {
          assert.ok(["0", "1", "2", "3"].includes(d), `device '${d}' is not one of the node's`);
          assert.equal(inUse.get(d), undefined, `device ${d} handed to ${m.id} while ${inUse.get(d)} runs on it`);
          inUse.set(d, m.id);
        }
        running++;
      } else {
        for (const d of devices) inUse.delete(d);
        running--;
      }
      mostAtOnce = Math.max(mostAtOnce, inUse.size);
      jobsAtOnce = Math.max(jobsAtOnce, running);
    }
    assert.equal(marks(log).length, 2 * jobs.length, "every job started and ended once");
    // Packing 8 would allow 8 at once; the GPUs hold it to 4 devices, and jobs did share the node.
    assert.ok(jobsAtOnce >= 2, `jobs ran one at a time (${jobsAtOnce}): the test proves nothing`);
    assert.ok(mostAtOnce <= 4 && mostAtOnce >= 3, `devices in use at once: ${mostAtOnce}`);
  });

  test("nvidia-smi -L (a stand-in: no GPU here) gives the node's GPUs; the allocation's CUDA_VISIBLE_DEVICES narrows them", async () => {
    const log = join(f.dir, "smi.log");
    await f.balsam.apps.add({ name: "smi-logger", executable: deviceLogger("smi-logger.sh", log, 0.3) });
    const path = standInNvidiaSmi(
      "smi",
      "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-11111111-2222-3333-4444-555555555555)\nGPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-66666666-7777-8888-9999-000000000000)\n",
    );
    const a = await f.balsam.jobs.addMany([0, 1].map((i) => ({ name: `s${i}`, workflow: "SMI", application: "smi-logger", nodePackingCount: 2, gpusPerRank: 1 })));
    const out = await f.launch("SMI", { env: { PATH: path, CUDA_VISIBLE_DEVICES: undefined } });
    assert.match(out, /GPUs on each node: 0,1 \(from nvidia-smi\)/);
    const seen = marks(log).filter((m) => m.what === "start");
    assert.deepEqual(seen.map((m) => m.id).sort(), a.map((j) => j._id).sort());
    for (const m of seen) assert.ok(["0", "1"].includes(m.devices), m.devices);

    // A Slurm job given GPUs 2 and 3 of the node: jobs get those, never 0 or 1.
    const b = await f.balsam.jobs.addMany([0, 1].map((i) => ({ name: `n${i}`, workflow: "SMI2", application: "smi-logger", nodePackingCount: 2, gpusPerRank: 1 })));
    const out2 = await f.launch("SMI2", { env: { PATH: path, CUDA_VISIBLE_DEVICES: "2,3" } });
    assert.match(out2, /GPUs on each node: 2,3 \(from nvidia-smi\)/);
    const narrowed = marks(log).filter((m) => m.what === "start" && b.some((j) => j._id === m.id));
    assert.equal(narrowed.length, 2);
    for (const m of narrowed) assert.ok(["2", "3"].includes(m.devices), m.devices);
  });

  test("ZE_AFFINITY_MASK of the allocation (no nvidia-smi answers): Intel tiles, handed out in ZE_AFFINITY_MASK", async () => {
    const app = f.script("ze.sh", 'echo "BALSAM-RESULT: {\\"ze\\": \\"$ZE_AFFINITY_MASK\\", \\"order\\": \\"$ZE_ENABLE_PCI_ID_DEVICE_ORDER\\", \\"cuda\\": \\"${CUDA_VISIBLE_DEVICES-unset}\\"}"');
    await f.balsam.apps.add({ name: "ze", executable: app });
    // A stand-in nvidia-smi that fails, as one does on a node without an NVIDIA driver.
    const path = standInNvidiaSmi("nosmi", "");
    writeFileSync(join(f.dir, "nosmi", "nvidia-smi"), "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.' >&2\nexit 9\n", { mode: 0o755 });
    const j = await f.balsam.jobs.add({ name: "tiles", workflow: "ZE", application: "ze", gpusPerRank: 2 });
    const out = await f.launch("ZE", { env: { PATH: path, CUDA_VISIBLE_DEVICES: undefined, ZE_AFFINITY_MASK: "0.0,0.1,1.0,1.1" } });
    assert.match(out, /GPUs on each node: 0\.0,0\.1,1\.0,1\.1 \(from ZE_AFFINITY_MASK\), handed to jobs in ZE_AFFINITY_MASK/);
    assert.deepEqual((await f.balsam.jobs.get(j._id)).data.result, { ze: "0.0,0.1", order: "1", cuda: "unset" });
  });

  test("an MPI job of 2 ranks × 1 GPU: each rank gets its own device through Open MPI's local rank", async () => {
    const app = f.script("rank-gpu.sh", 'echo "rank $OMPI_COMM_WORLD_LOCAL_RANK devices $CUDA_VISIBLE_DEVICES"');
    await f.balsam.apps.add({ name: "rank-gpu", executable: app });
    const j = await f.balsam.jobs.add({ name: "ranks", workflow: "MPIGPU", application: "rank-gpu", numNodes: 1, ranksPerNode: 2, gpusPerRank: 1 });
    const out = await f.launch("MPIGPU", { mode: "mpi", env: { BALSAM_GPUS_PER_NODE: "4" } });
    const done = await f.balsam.jobs.get(j._id);
    assert.equal(done.state, "JOB_FINISHED", out);
    const text = readFileSync(join(done.workdir, "ranks.out"), "utf8");
    assert.match(text, /^rank 0 devices 0$/m, text);
    assert.match(text, /^rank 1 devices 1$/m, text);
  });

  test("a job needing more GPUs than this launcher's nodes is left for another launcher, and the launcher still exits", async () => {
    const app = f.script("never.sh", "echo ran");
    await f.balsam.apps.add({ name: "never", executable: app });
    const j = await f.balsam.jobs.add({ name: "big", workflow: "BIG", application: "never", gpusPerRank: 3 });
    const out = await f.launch("BIG", { env: { BALSAM_GPUS_PER_NODE: "2" } });
    assert.match(out, /needs 3 GPU\(s\) per node, this launcher's nodes have 2: left for another launcher/);
    assert.equal((await f.balsam.jobs.get(j._id)).state, "READY");
    await f.balsam.jobs.filter({ workflow: "BIG" }).delete();
  });

  test("with the settings' gpusPerNode: more GPUs than a node has is refused at creation with one line, exit 2, nothing added; modify too; a launcher fails an older one", async () => {
    // Made before the limit was set, as a database from before this release would hold.
    const app = f.script("old.sh", "echo ran");
    await f.balsam.apps.add({ name: "old", executable: app });
    const old = await f.balsam.jobs.add({ name: "old", workflow: "LIMIT", application: "old", gpusPerRank: 8 });
    const ok = await f.balsam.jobs.add({ name: "ok", workflow: "LIMIT", application: "old", gpusPerRank: 1 });
    const file = join(f.db.dir, "settings.json");
    const settings = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...settings, gpusPerNode: 4 }, null, 2));

    const before = await f.balsam.jobs.filter({ workflow: "LIMIT" }).count();
    const single = await f.db.run(["job", "--name", "toobig", "--workflow", "LIMIT", "--application", "old", "--gpus-per-rank", "5", "--yes"]);
    assert.equal(single.code, 2, single.stderr);
    assert.equal(single.stderr.trim(), "balsam: the job needs 5 GPUs per node (gpus_per_rank 5), but this site's nodes have 4 (settings gpusPerNode) (lower gpus_per_rank, or correct gpusPerNode in settings.json)");
    const ranks = await f.db.run(["job", "--name", "ranks", "--workflow", "LIMIT", "--application", "old", "--ranks-per-node", "3", "--gpus-per-rank", "2", "--yes"]);
    assert.equal(ranks.code, 2, ranks.stderr);
    assert.match(ranks.stderr, /^balsam: the job needs 6 GPUs per node \(gpus_per_rank 2 × ranks_per_node 3\), but this site's nodes have 4/);
    const bad = await f.db.run(["job", "--name", "neg", "--workflow", "LIMIT", "--application", "old", "--gpus-per-rank", "-1", "--yes"]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--gpus-per-rank must be ≥ 0, not -1/);
    assert.equal(await f.balsam.jobs.filter({ workflow: "LIMIT" }).count(), before, "nothing added");
    const fits = await f.db.run(["job", "--name", "fits", "--workflow", "LIMIT", "--application", "old", "--ranks-per-node", "2", "--gpus-per-rank", "2", "--yes"]);
    assert.equal(fits.code, 0, fits.stderr);
    const made = await f.balsam.jobs.get(fits.stdout.trim());
    assert.deepEqual([made.gpusPerRank, made.ranksPerNode], [2, 2]);
    await f.balsam.jobs.filter({ name: "fits", workflow: "LIMIT" }).delete();

    const mod = await f.db.run(["modify", ok._id, "gpus_per_rank", "6"]);
    assert.equal(mod.code, 2, mod.stderr);
    assert.match(mod.stderr, /this site's nodes have 4/);
    assert.equal((await f.balsam.jobs.get(ok._id)).gpusPerRank, 1, "modify changed nothing");
    const fine = await f.db.run(["modify", ok._id, "gpus_per_rank", "4"]);
    assert.equal(fine.code, 0, fine.stderr);

    const ls = await f.db.run(["ls", "--wf", "LIMIT"], { env: { BALSAM_LS_FIELDS: "gpus_per_rank" } });
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /gpus_per_rank/);
    assert.match(ls.stdout.split("\n").find((l) => l.includes(ok._id)) ?? "", /\b4\s*$/);

    // The launcher takes the node's GPU count from the settings too.
    const out = await f.launch("LIMIT");
    assert.match(out, /GPUs on each node: 0,1,2,3 \(from the settings' gpusPerNode\)/);
    const failed = await f.balsam.jobs.get(old._id);
    assert.equal(failed.state, "FAILED");
    assert.equal(failed.stateHistory.at(-1)?.message, "the job needs 8 GPUs per node (gpus_per_rank 8), but this site's nodes have 4 (settings gpusPerNode)");
    assert.equal((await f.balsam.jobs.get(ok._id)).state, "JOB_FINISHED");
    writeFileSync(file, JSON.stringify(settings, null, 2));
  });
});
