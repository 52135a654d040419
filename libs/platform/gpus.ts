/**
 * A node's GPUs: how many, their ids, and which variable hands them to a
 * job. Pure: running `nvidia-smi -L` is injected, as reading a nodefile is
 * in nodes.ts.
 */
import { ConfigError, UsageError } from "../errors/index.js";
import type { MpiKind } from "./mpi.js";

export type GpuVendor = "nvidia" | "intel";

/** Where a launcher's GPU list came from, first that answers wins (see discoverGpus). */
export type GpuSource = "flag" | "env" | "settings" | "nvidia-smi" | "CUDA_VISIBLE_DEVICES" | "ZE_AFFINITY_MASK" | "none";

export interface NodeGpus {
  /** Device ids as the vendor's variable takes them: indices ("0"), MIG UUIDs, Intel tiles ("0.1"). */
  ids: string[];
  vendor: GpuVendor;
  source: GpuSource;
}

export interface DiscoverGpusOptions {
  /** `balsam launcher --gpus-per-node G`. */
  flag?: number;
  /** The settings' `gpusPerNode`. */
  settings?: number;
  /** `--gpu-vendor`, else `BALSAM_GPU_VENDOR`, else the settings' `gpuVendor`; auto decides from the source. */
  vendor?: GpuVendor | "auto";
  /** `nvidia-smi -L`'s output, or undefined when it cannot be run (not installed, no driver). */
  nvidiaSmi: () => string | undefined;
}

/** Matches the settings' bound: more is a typo. */
const MAX_GPUS = 1024;

/**
 * The GPUs of each node of this launcher. The first source that answers wins:
 *
 * 1. `--gpus-per-node G` (the override on the command line), then
 *    `BALSAM_GPUS_PER_NODE` (the override in a batch script or a test):
 *    devices 0..G-1; 0 turns GPUs off;
 * 2. the settings' `gpusPerNode`: devices 0..G-1;
 * 3. `nvidia-smi -L`: its GPUs by index, or its MIG instances by UUID when it
 *    lists any — narrowed to the allocation's `CUDA_VISIBLE_DEVICES` when the
 *    batch system set one (a Slurm job given 2 of a node's 4 GPUs);
 * 4. the allocation's `CUDA_VISIBLE_DEVICES` (no nvidia-smi on the node);
 * 5. the allocation's `ZE_AFFINITY_MASK` (Intel: `0,1` or tiles `0.0,0.1`);
 * 6. none.
 *
 * The vendor: as given, else intel for a ZE_AFFINITY_MASK (found, or set
 * in the allocation beside a count), else nvidia.
 */
export function discoverGpus(env: NodeJS.ProcessEnv, opts: DiscoverGpusOptions): NodeGpus {
  const given = opts.vendor === "auto" ? undefined : opts.vendor;
  const vendorFor = (found: GpuVendor) => given ?? found;
  const countVendor = vendorFor(nonEmpty(env, "ZE_AFFINITY_MASK") !== undefined ? "intel" : "nvidia");
  if (opts.flag !== undefined) return { ids: indices(checkCount(opts.flag, "--gpus-per-node")), vendor: countVendor, source: "flag" };
  const fromEnv = nonEmpty(env, "BALSAM_GPUS_PER_NODE");
  if (fromEnv !== undefined) {
    // A usage error (exit 2), as the launcher's other environment overrides are.
    if (!/^\d+$/.test(fromEnv)) throw new UsageError(`BALSAM_GPUS_PER_NODE must be a whole number ≥ 0, not '${fromEnv}'`);
    return { ids: indices(checkCount(Number(fromEnv), "BALSAM_GPUS_PER_NODE")), vendor: countVendor, source: "env" };
  }
  if (opts.settings !== undefined) return { ids: indices(checkCount(opts.settings, "gpusPerNode")), vendor: countVendor, source: "settings" };

  const cuda = deviceList(env, "CUDA_VISIBLE_DEVICES");
  const smi = opts.nvidiaSmi();
  const listed = smi === undefined ? [] : parseNvidiaSmiList(smi);
  if (listed.length > 0) return { ids: cuda ?? listed, vendor: vendorFor("nvidia"), source: "nvidia-smi" };
  if (cuda !== undefined) return { ids: cuda, vendor: vendorFor("nvidia"), source: "CUDA_VISIBLE_DEVICES" };
  const ze = deviceList(env, "ZE_AFFINITY_MASK");
  if (ze !== undefined) return { ids: ze, vendor: vendorFor("intel"), source: "ZE_AFFINITY_MASK" };
  return { ids: [], vendor: vendorFor("nvidia"), source: "none" };
}

/**
 * The devices `nvidia-smi -L` lists: `GPU 0: NVIDIA A100 (UUID: GPU-…)`
 * lines by index; when a GPU is split into MIG instances (indented
 * `MIG 1g.10gb Device 0: (UUID: MIG-…)` lines), those instances by UUID
 * instead, as CUDA_VISIBLE_DEVICES takes them, and the whole GPU is not
 * handed out (Balsam 2's Polaris node does the same from its gpulist file).
 */
export function parseNvidiaSmiList(text: string): string[] {
  const ids: string[] = [];
  let gpu: string | undefined;
  let migs: string[] = [];
  const flush = () => {
    if (gpu !== undefined) ids.push(...(migs.length ? migs : [gpu]));
    gpu = undefined;
    migs = [];
  };
  for (const line of text.split(/\r?\n/)) {
    const g = /^GPU (\d+):/.exec(line);
    if (g) {
      flush();
      gpu = g[1];
      continue;
    }
    const m = /^\s+MIG\b.*\(UUID: (MIG-[^)\s]+)\)/.exec(line);
    if (m?.[1] !== undefined && gpu !== undefined) migs.push(m[1]);
  }
  flush();
  return ids;
}

/** A device list variable set by the allocation; `""`, `-1` and Slurm's `NoDevFiles` mean no device. Undefined when unset. */
function deviceList(env: NodeJS.ProcessEnv, name: string): string[] | undefined {
  const raw = env[name];
  if (raw === undefined) return undefined;
  const v = raw.trim();
  if (v === "" || v === "-1" || v === "NoDevFiles") return [];
  // A repeated id would be granted to two jobs at once.
  const ids = [...new Set(v.split(",").map((s) => s.trim()).filter((s) => s !== ""))];
  if (ids.length > MAX_GPUS) throw new ConfigError(`${name} lists more than ${MAX_GPUS} devices`);
  return ids;
}

function nonEmpty(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === "" ? undefined : v;
}

function checkCount(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > MAX_GPUS) throw new UsageError(`${what} must be a whole number from 0 to ${MAX_GPUS}, not ${n}`);
  return n;
}

function indices(n: number): string[] {
  return Array.from({ length: n }, (_, i) => String(i));
}

/** The variable a vendor's runtime reads its visible devices from. */
export function deviceVariable(vendor: GpuVendor): "CUDA_VISIBLE_DEVICES" | "ZE_AFFINITY_MASK" {
  return vendor === "intel" ? "ZE_AFFINITY_MASK" : "CUDA_VISIBLE_DEVICES";
}

/**
 * The variables that give a process exactly `ids`: nothing for none (the
 * job sees what the launcher sees, as in Balsam 2). The ordering variable
 * makes the indices mean what nvidia-smi and the Level Zero tools print
 * (PCI bus order), not the runtime's fastest-first order.
 */
export function gpuEnv(vendor: GpuVendor, ids: readonly string[]): Record<string, string> {
  if (ids.length === 0) return {};
  if (vendor === "intel") return { ZE_ENABLE_PCI_ID_DEVICE_ORDER: "1", ZE_AFFINITY_MASK: ids.join(",") };
  return { CUDA_DEVICE_ORDER: "PCI_BUS_ID", CUDA_VISIBLE_DEVICES: ids.join(",") };
}

/**
 * The variable each MPI flavour's launcher sets to a rank's index on its
 * node, which is how a rank finds its own GPUs (ALCF's
 * `set_affinity_gpu_polaris.sh` reads the same): Open MPI's mpirun, MPICH
 * and Intel MPI's Hydra (`MPI_LOCALRANKID`) or Cray PALS on Polaris and
 * Aurora (`PALS_LOCAL_RANKID`), Slurm's srun. aprun has none a rank can
 * count on; its ranks get the node's whole list.
 */
export const LOCAL_RANK_VARIABLES: Readonly<Record<MpiKind, readonly string[]>> = {
  openmpi: ["OMPI_COMM_WORLD_LOCAL_RANK"],
  mpich: ["MPI_LOCALRANKID", "PALS_LOCAL_RANKID", "PMI_LOCAL_RANK"],
  slurm: ["SLURM_LOCALID"],
  cray: [],
};

export interface MpiGpuBinding {
  /** Words put before the job's command on the MPI launch line (each rank runs them). */
  prefix: string[];
  /** Set on the launch: the whole list, and each rank's share. */
  env: Record<string, string>;
}

/**
 * How the ranks of an MPI job get their GPUs. Every rank sees the job's
 * whole list on its node; where the flavour tells a rank its local index,
 * a small `sh` wrapper narrows the list to that rank's `gpusPerRank`
 * devices (rank i: devices i·g … i·g+g-1 of the list) before it execs the
 * command. `BALSAM_RANK_GPUS` holds the shares, space-separated.
 */
export function mpiGpuBinding(kind: MpiKind, vendor: GpuVendor, ids: readonly string[], ranksPerNode: number, gpusPerRank: number): MpiGpuBinding {
  const env = gpuEnv(vendor, ids);
  const vars = LOCAL_RANK_VARIABLES[kind];
  // One rank a node: its share is the whole list, and no shell is needed to say so.
  if (ids.length === 0 || gpusPerRank <= 0 || vars.length === 0 || ranksPerNode <= 1) return { prefix: [], env };
  const shares = Array.from({ length: ranksPerNode }, (_, r) => ids.slice(r * gpusPerRank, (r + 1) * gpusPerRank).join(","));
  env.BALSAM_RANK_GPUS = shares.join(" ");
  const rank = vars.reduceRight((inner, v) => `\${${v}:-${inner}}`, "");
  const dev = deviceVariable(vendor);
  // A rank whose index is missing or past the shares keeps the whole list.
  const script = `r="${rank}"; i=0; for g in $BALSAM_RANK_GPUS; do [ "$i" = "$r" ] && export ${dev}="$g"; i=$((i+1)); done; exec "$@"`;
  return { prefix: ["/bin/sh", "-c", script, "balsam-rank-gpus"], env };
}

/** A node's GPU ids: those discovered, else indices for its count. */
export function nodeGpuIds(node: { gpus: number; gpuIds?: readonly string[] }): string[] {
  return node.gpuIds ? [...node.gpuIds] : indices(node.gpus);
}
