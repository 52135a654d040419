import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { ConfigError, UsageError } from "../../libs/errors/index.js";
import { discoverGpus, gpuEnv, mpiGpuBinding, parseNvidiaSmiList, type DiscoverGpusOptions } from "../../libs/platform/index.js";
import { checkJobLimits, gpuLimitProblem } from "../../libs/models/index.js";

// No GPU here: `nvidia-smi -L` is a stand-in — the text a real one prints on
// a Polaris node (4 × A100) and on an A100 split into MIG instances.
const POLARIS = [
  "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-3b2c1a00-0000-0000-0000-000000000000)",
  "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-3b2c1a01-0000-0000-0000-000000000000)",
  "GPU 2: NVIDIA A100-SXM4-40GB (UUID: GPU-3b2c1a02-0000-0000-0000-000000000000)",
  "GPU 3: NVIDIA A100-SXM4-40GB (UUID: GPU-3b2c1a03-0000-0000-0000-000000000000)",
  "",
].join("\n");
const MIG = [
  "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaaaaaa-0000-0000-0000-000000000000)",
  "  MIG 3g.20gb     Device  0: (UUID: MIG-11111111-1111-1111-1111-111111111111)",
  "  MIG 3g.20gb     Device  1: (UUID: MIG-22222222-2222-2222-2222-222222222222)",
  "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-bbbbbbbb-0000-0000-0000-000000000000)",
].join("\n");

const noSmi = () => undefined;
const smi = (text: string) => () => text;
const opts = (o: Partial<DiscoverGpusOptions> = {}): DiscoverGpusOptions => ({ nvidiaSmi: noSmi, ...o });

describe("discoverGpus: the first source that answers", () => {
  test("stand-in nvidia-smi -L: its GPUs by index, nvidia", () => {
    assert.deepEqual(discoverGpus({}, opts({ nvidiaSmi: smi(POLARIS) })), { ids: ["0", "1", "2", "3"], vendor: "nvidia", source: "nvidia-smi" });
  });

  test("stand-in nvidia-smi -L with MIG instances: the instances by UUID, the whole GPU only where it is not split", () => {
    assert.deepEqual(parseNvidiaSmiList(MIG), ["MIG-11111111-1111-1111-1111-111111111111", "MIG-22222222-2222-2222-2222-222222222222", "1"]);
  });

  test("nvidia-smi narrowed by the allocation's CUDA_VISIBLE_DEVICES (a Slurm job given 2 of 4)", () => {
    assert.deepEqual(discoverGpus({ CUDA_VISIBLE_DEVICES: "2,3" }, opts({ nvidiaSmi: smi(POLARIS) })).ids, ["2", "3"]);
  });

  test("nvidia-smi printing nothing useful (no driver) falls through to CUDA_VISIBLE_DEVICES, then ZE_AFFINITY_MASK", () => {
    const failing = smi("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n");
    assert.deepEqual(discoverGpus({ CUDA_VISIBLE_DEVICES: "0,1", ZE_AFFINITY_MASK: "0,1,2" }, opts({ nvidiaSmi: failing })), { ids: ["0", "1"], vendor: "nvidia", source: "CUDA_VISIBLE_DEVICES" });
    assert.deepEqual(discoverGpus({ ZE_AFFINITY_MASK: "0.0,0.1,1.0" }, opts({ nvidiaSmi: failing })), { ids: ["0.0", "0.1", "1.0"], vendor: "intel", source: "ZE_AFFINITY_MASK" });
  });

  test("an allocation that says no device ('', -1, NoDevFiles) has none", () => {
    for (const v of ["", "-1", "NoDevFiles"]) assert.deepEqual(discoverGpus({ CUDA_VISIBLE_DEVICES: v }, opts()).ids, [], v);
    assert.deepEqual(discoverGpus({}, opts()), { ids: [], vendor: "nvidia", source: "none" });
  });

  test("overrides: --gpus-per-node, then BALSAM_GPUS_PER_NODE, then the settings, all before discovery", () => {
    const env = { BALSAM_GPUS_PER_NODE: "2", CUDA_VISIBLE_DEVICES: "5" };
    assert.deepEqual(discoverGpus(env, opts({ flag: 3, settings: 4, nvidiaSmi: smi(POLARIS) })), { ids: ["0", "1", "2"], vendor: "nvidia", source: "flag" });
    assert.deepEqual(discoverGpus(env, opts({ settings: 4, nvidiaSmi: smi(POLARIS) })).source, "env");
    assert.deepEqual(discoverGpus({}, opts({ settings: 4, nvidiaSmi: smi(POLARIS) })).source, "settings");
    assert.deepEqual(discoverGpus(env, opts({ flag: 0 })).ids, [], "0 turns GPUs off");
  });

  test("the vendor: given, else intel beside a ZE_AFFINITY_MASK, else nvidia", () => {
    assert.equal(discoverGpus({}, opts({ flag: 6, vendor: "intel" })).vendor, "intel");
    assert.equal(discoverGpus({ ZE_AFFINITY_MASK: "0,1" }, opts({ flag: 2 })).vendor, "intel");
    assert.equal(discoverGpus({}, opts({ flag: 2, vendor: "auto" })).vendor, "nvidia");
  });

  test("an allocation's list: repeats collapse (one device is never granted twice); an absurd one is a ConfigError", () => {
    assert.deepEqual(discoverGpus({ CUDA_VISIBLE_DEVICES: "0,1,0" }, opts()).ids, ["0", "1"]);
    const huge = Array.from({ length: 1025 }, (_, i) => String(i)).join(",");
    assert.throws(() => discoverGpus({ ZE_AFFINITY_MASK: huge }, opts()), ConfigError);
  });

  test("a bad override is refused with its name", () => {
    assert.throws(() => discoverGpus({ BALSAM_GPUS_PER_NODE: "four" }, opts()), (e: unknown) => e instanceof UsageError && /BALSAM_GPUS_PER_NODE must be a whole number/.test(e.message));
    assert.throws(() => discoverGpus({}, opts({ flag: 5000 })), (e: unknown) => e instanceof UsageError && /--gpus-per-node must be a whole number from 0 to 1024/.test(e.message));
  });
});

describe("handing devices to jobs", () => {
  test("gpuEnv: CUDA_VISIBLE_DEVICES in PCI order, or Intel's ZE_AFFINITY_MASK; nothing for no device", () => {
    assert.deepEqual(gpuEnv("nvidia", ["1", "2"]), { CUDA_DEVICE_ORDER: "PCI_BUS_ID", CUDA_VISIBLE_DEVICES: "1,2" });
    assert.deepEqual(gpuEnv("intel", ["0.1"]), { ZE_ENABLE_PCI_ID_DEVICE_ORDER: "1", ZE_AFFINITY_MASK: "0.1" });
    assert.deepEqual(gpuEnv("nvidia", []), {});
  });

  /** What a rank's wrapper hands the command, for a local-rank variable set as `env` says. */
  function rankSees(b: ReturnType<typeof mpiGpuBinding>, env: Record<string, string>, variable = "CUDA_VISIBLE_DEVICES"): string {
    const r = spawnSync(b.prefix[0]!, [...b.prefix.slice(1), "/bin/sh", "-c", `printf %s "$${variable}"`], { env: { PATH: process.env.PATH ?? "", ...b.env, ...env }, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  }

  test("MPI: each flavour's local-rank variable picks the rank's own share; without one, the whole list", () => {
    const ids = ["0", "1", "2", "3"];
    const ompi = mpiGpuBinding("openmpi", "nvidia", ids, 2, 2);
    assert.equal(ompi.env.CUDA_VISIBLE_DEVICES, "0,1,2,3");
    assert.equal(ompi.env.BALSAM_RANK_GPUS, "0,1 2,3");
    assert.equal(rankSees(ompi, { OMPI_COMM_WORLD_LOCAL_RANK: "0" }), "0,1");
    assert.equal(rankSees(ompi, { OMPI_COMM_WORLD_LOCAL_RANK: "1" }), "2,3");
    assert.equal(rankSees(ompi, {}), "0,1,2,3", "no local rank: the whole list");
    const mpich = mpiGpuBinding("mpich", "nvidia", ids, 4, 1);
    assert.equal(rankSees(mpich, { MPI_LOCALRANKID: "2" }), "2", "Hydra");
    assert.equal(rankSees(mpich, { PALS_LOCAL_RANKID: "3" }), "3", "Cray PALS (Polaris, Aurora)");
    const srun = mpiGpuBinding("slurm", "intel", ["0.0", "0.1", "1.0", "1.1"], 4, 1);
    assert.equal(rankSees(srun, { SLURM_LOCALID: "1" }, "ZE_AFFINITY_MASK"), "0.1");
    const aprun = mpiGpuBinding("cray", "nvidia", ids, 2, 1);
    assert.deepEqual(aprun.prefix, [], "aprun tells a rank nothing: the whole list");
    assert.equal(aprun.env.CUDA_VISIBLE_DEVICES, "0,1,2,3");
    assert.deepEqual(mpiGpuBinding("openmpi", "nvidia", [], 2, 0), { prefix: [], env: {} });
    assert.deepEqual(mpiGpuBinding("openmpi", "nvidia", ["0", "1"], 1, 2), { prefix: [], env: { CUDA_DEVICE_ORDER: "PCI_BUS_ID", CUDA_VISIBLE_DEVICES: "0,1" } }, "one rank a node: no wrapper");
  });
});

describe("jobs that no node can hold", () => {
  test("refused against the settings' gpusPerNode with one line; unknown limit refuses nothing", () => {
    assert.equal(gpuLimitProblem({ ranksPerNode: 1, gpusPerRank: 4 }, 4), undefined);
    assert.equal(gpuLimitProblem({ ranksPerNode: 4, gpusPerRank: 2 }, undefined), undefined);
    assert.equal(gpuLimitProblem({ ranksPerNode: 4, gpusPerRank: 2 }, 4), "the job needs 8 GPUs per node (gpus_per_rank 2 × ranks_per_node 4), but this site's nodes have 4 (settings gpusPerNode)");
    assert.equal(gpuLimitProblem({ ranksPerNode: 1 }, 0), undefined, "a job from before the field needs none");
    assert.throws(() => checkJobLimits({ gpusPerRank: 5 }, { maxGpusPerNode: 4 }), UsageError);
  });
});
