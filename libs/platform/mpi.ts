/**
 * Builds the argv and environment that start one MPI job, for each MPI
 * implementation a launcher may find. Pure: running the command is the
 * launcher runner's business.
 */
import { UsageError } from "../errors/index.js";

export type MpiKind = "openmpi" | "mpich" | "cray" | "slurm";

export interface MpiLaunchSpec {
  /** Host names (Cray: node ids, or `nid00012`-style names) the job runs on. Non-empty, no repeats. */
  hosts: string[];
  /** >= 1. Total ranks are `hosts.length * ranksPerNode`. */
  ranksPerNode: number;
  /** >= 1. Also exported as `OMP_NUM_THREADS`. */
  threadsPerRank: number;
  /** >= 1. Hardware threads used per core; only `aprun` takes it (`-j`). */
  threadsPerCore: number;
  /** `depth` binds each rank to `threadsPerRank` cores; `none` leaves placement to the OS. */
  cpuAffinity: "none" | "depth";
  /** Extra launcher flags, placed right before the command. */
  mpiFlags: string[];
  /** The program and its arguments. Non-empty. */
  command: string[];
  /** Variables the ranks need, on top of whatever the launcher process already has. */
  env: Record<string, string>;
  /**
   * CPUs per node, when known. The binding width (cores per rank) is capped at
   * this, because Open MPI refuses `PE=` wider than a node even with
   * `overload-allowed`, and `srun`/`aprun` reject it too.
   */
  cpusPerNode?: number;
  /** The launcher runs as root (containers, CI). Open MPI only. Default false. */
  asRoot?: boolean;
}

export interface MpiCommand {
  argv: string[];
  /** Set these on the process that runs `argv[0]`; the launchers forward them to the ranks. */
  env: Record<string, string>;
}

export function buildMpiCommand(kind: MpiKind, spec: MpiLaunchSpec): MpiCommand {
  validate(spec);
  const env = baseEnv(spec);
  const launcher = launcherArgv(kind, spec, env);
  return { argv: [...launcher, ...spec.mpiFlags, ...spec.command], env };
}

/** The launcher and its own flags, which come before the caller's `mpiFlags` and command. May add to `env`. */
function launcherArgv(kind: MpiKind, spec: MpiLaunchSpec, env: Record<string, string>): string[] {
  switch (kind) {
    case "openmpi":
      return openMpiArgv(spec, env);
    case "mpich":
      return mpichArgv(spec, env);
    case "cray":
      return aprunArgv(spec);
    case "slurm":
      return srunArgv(spec);
    default: {
      const unknown: never = kind;
      throw new UsageError(`unknown MPI kind '${String(unknown)}'`, {
        hint: "use one of openmpi, mpich, cray, slurm",
      });
    }
  }
}

/**
 * Tells the MPI implementation from `mpirun --version` output. Intel MPI and
 * MVAPICH are Hydra-based and take MPICH's flags. Cray and Slurm launchers are
 * not `mpirun`, so they are never detected here.
 */
export function detectMpiKind(versionOutput: string): MpiKind | undefined {
  if (/Open MPI|OpenRTE/i.test(versionOutput)) return "openmpi";
  if (/Intel\(R\) MPI|HYDRA|MPICH|MVAPICH/i.test(versionOutput)) return "mpich";
  return undefined;
}

function validate(spec: MpiLaunchSpec): void {
  if (spec.hosts.length === 0) {
    throw new UsageError("an MPI job needs at least one host, got none");
  }
  const seen = new Set<string>();
  for (const host of spec.hosts) {
    if (host.trim() === "") throw new UsageError("an MPI host name is empty");
    // A repeat would silently double that node's slots in Open MPI's --host.
    if (seen.has(host)) throw new UsageError(`MPI host '${host}' is listed twice`);
    seen.add(host);
  }
  requireWhole(spec.ranksPerNode, "ranksPerNode");
  requireWhole(spec.threadsPerRank, "threadsPerRank");
  requireWhole(spec.threadsPerCore, "threadsPerCore");
  if (spec.cpusPerNode !== undefined) requireWhole(spec.cpusPerNode, "cpusPerNode");
  if (spec.command.length === 0) throw new UsageError("an MPI job needs a command, got none");
  for (const name of Object.keys(spec.env)) {
    // Open MPI's `-x NAME` and Hydra's comma-separated `-envlist` both need plain names.
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new UsageError(`environment variable name '${name}' is not valid for an MPI launch`);
    }
  }
}

function requireWhole(n: number, name: string): void {
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a whole number >= 1, got ${n}`);
}

function totalRanks(spec: MpiLaunchSpec): string {
  return String(spec.hosts.length * spec.ranksPerNode);
}

function bindWidth(spec: MpiLaunchSpec): number {
  return spec.cpusPerNode === undefined ? spec.threadsPerRank : Math.min(spec.threadsPerRank, spec.cpusPerNode);
}

function baseEnv(spec: MpiLaunchSpec): Record<string, string> {
  return { ...spec.env, OMP_NUM_THREADS: String(spec.threadsPerRank) };
}

/** Sorted so the same spec always gives the same argv. */
function envNames(env: Record<string, string>): string[] {
  return Object.keys(env).sort();
}

function openMpiArgv(spec: MpiLaunchSpec, env: Record<string, string>): string[] {
  if (spec.asRoot === true) {
    // mpirun exits at once as root unless both are set.
    env.OMPI_ALLOW_RUN_AS_ROOT = "1";
    env.OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = "1";
  }
  const rpn = spec.ranksPerNode;
  const depth = spec.cpuAffinity === "depth";
  return [
    "mpirun",
    ...["-n", totalRanks(spec)],
    ...["--host", spec.hosts.map((h) => `${h}:${rpn}`).join(",")],
    // `slot` fills each host's `:rpn` slots in turn; `ppr:N:node` would count
    // hosts that resolve to one machine (localhost + its name) as one node.
    ...["--map-by", depth ? `slot:PE=${bindWidth(spec)}` : "slot"],
    // Plain `core` aborts when ranks x PE exceeds the node's cores (2 ranks x
    // PE=2 on a 2-core test VM); overload-allowed lets them share cores instead.
    ...["--bind-to", depth ? "core:overload-allowed" : "none"],
    // Small test machines and packed launchers ask for more ranks than
    // cores; Open MPI refuses that unless told to oversubscribe.
    "--oversubscribe",
    // -x forwards a variable's value from mpirun's own environment to every rank.
    ...envNames(env).flatMap((name) => ["-x", name]),
  ];
}

function mpichArgv(spec: MpiLaunchSpec, env: Record<string, string>): string[] {
  const bind = spec.cpuAffinity === "depth" ? ["-bind-to", `core:${bindWidth(spec)}`] : [];
  return ["mpiexec", "-n", totalRanks(spec), "-ppn", String(spec.ranksPerNode), "-hosts", spec.hosts.join(","), ...bind, "-envlist", envNames(env).join(",")];
}

function aprunArgv(spec: MpiLaunchSpec): string[] {
  const perNode = ["-N", String(spec.ranksPerNode), "-d", String(bindWidth(spec)), "-j", String(spec.threadsPerCore)];
  return ["aprun", "-n", totalRanks(spec), ...perNode, "-cc", spec.cpuAffinity, "-L", spec.hosts.map(crayNodeId).join(",")];
}

/** `aprun -L` takes numeric nids; Cray nodefiles name the same nodes `nid00012`. */
function crayNodeId(host: string): string {
  if (/^\d+$/.test(host)) return String(Number(host));
  const m = /^nid0*(\d+)$/.exec(host);
  if (m?.[1] !== undefined) return String(Number(m[1]));
  throw new UsageError(`aprun needs numeric node ids, got host '${host}'`, {
    hint: "on Cray systems the node list comes from COBALT_PARTNAME or nidNNNNN host names",
  });
}

function srunArgv(spec: MpiLaunchSpec): string[] {
  return [
    "srun",
    ...["-n", totalRanks(spec), "-N", String(spec.hosts.length)],
    `--ntasks-per-node=${spec.ranksPerNode}`,
    `--cpus-per-task=${bindWidth(spec)}`,
    `--cpu-bind=${spec.cpuAffinity === "depth" ? "cores" : "none"}`,
    `--nodelist=${spec.hosts.join(",")}`,
    // srun copies the caller's environment to every task; `env` is set on srun itself.
    "--export=ALL",
  ];
}
