import { join } from "node:path";
import { appendFileSync } from "node:fs";
import { quote as shellQuote } from "shell-quote";
import { splitCommandLine, type App, type Job, type JobState } from "../../libs/models/index.js";
import { buildMpiCommand, gpuEnv, mpiGpuBinding, type GpuVendor, type MpiKind, type NodeInfo } from "../../libs/platform/index.js";
import { findOnPath, type RunSpec } from "./runner.js";
import type { Grant } from "./pool.js";

export interface CommandOptions {
  dbPath: string;
  nodes: NodeInfo[];
  jobMode: "serial" | "mpi";
  mpiKind: MpiKind;
  /** Which variable hands a job its GPUs. */
  gpuVendor: GpuVendor;
  /** The launcher's lease owner token, handed to the job's scripts. */
  owner: string;
}

type Command = Pick<RunSpec, "argv" | "shellCommand" | "env">;

/** Turns a job and its app into the command lines and environments its processes run with. */
export class CommandBuilder {
  /** Packed jobs started per host so far: cores go round robin (GPUs are the grant's own). */
  private readonly turns = new Map<string, number>();
  private readonly taskset = findOnPath("taskset");

  constructor(private readonly o: CommandOptions) {}

  /**
   * The variables every process of a job sees, as 0.x's launcher set them:
   * its id, its parents as a JSON list, the launcher's node count and mode,
   * the database; and the lease, so the job's own scripts may set its state
   * (DESIGN invariant 3).
   */
  jobEnv(job: Job): Record<string, string> {
    return {
      ...job.environVars,
      BALSAM_JOB_ID: job._id,
      BALSAM_PARENT_IDS: JSON.stringify(job.parents),
      BALSAM_DB_PATH: this.o.dbPath,
      BALSAM_LAUNCHER_NODES: String(this.o.nodes.length),
      BALSAM_JOB_MODE: this.o.jobMode,
      BALSAM_JOB_LEASE: this.o.owner,
    };
  }

  /** The job's run on the grant's hosts and GPUs: packed on its node (serial), or under mpirun. */
  run(job: Job, app: App, grant: Grant): Command {
    const jobEnv = this.jobEnv(job);
    const exe = splitCommandLine(app.executable, "executable");
    const args = splitCommandLine(job.args, "args");
    let argv: string[];
    let env: Record<string, string>;
    if (this.o.jobMode === "serial") {
      ({ argv, env } = this.packed(job, grant.hosts[0]!, grant.gpus[0] ?? [], [...exe, ...args], jobEnv));
    } else {
      const gpus = mpiGpuBinding(this.o.mpiKind, this.o.gpuVendor, grant.gpus[0] ?? [], job.ranksPerNode, job.gpusPerRank ?? 0);
      const mpi = buildMpiCommand(this.o.mpiKind, {
        hosts: grant.hosts,
        ranksPerNode: job.ranksPerNode,
        threadsPerRank: job.threadsPerRank,
        threadsPerCore: job.threadsPerCore,
        cpuAffinity: job.cpuAffinity,
        mpiFlags: splitCommandLine(job.mpiFlags, "mpi_flags"),
        command: [...gpus.prefix, ...exe, ...args],
        env: { ...jobEnv, ...gpus.env },
        asRoot: process.getuid?.() === 0,
      });
      argv = mpi.argv;
      env = { ...jobEnv, ...mpi.env };
    }
    // Only apps with an envscript go through a shell: it has to be sourced, before the MPI launch too.
    if (app.envscript) return { argv: [], shellCommand: `source ${shellQuote([app.envscript])} && exec ${shellQuote(argv)}`, env };
    return { argv, env };
  }

  /**
   * A packed serial job's share of its node, as 0.x's serial mode gave it:
   * OMP_NUM_THREADS, exactly the GPUs its grant holds, and with
   * `cpu_affinity depth` its own cores through taskset.
   */
  private packed(job: Job, host: string, gpus: string[], command: string[], jobEnv: Record<string, string>): { argv: string[]; env: Record<string, string> } {
    const env: Record<string, string> = { OMP_NUM_THREADS: String(job.threadsPerRank), ...jobEnv, ...gpuEnv(this.o.gpuVendor, gpus) };
    const node = this.o.nodes.find((n) => n.host === host);
    const turn = this.turns.get(host) ?? 0;
    this.turns.set(host, turn + 1);
    if (job.cpuAffinity === "depth" && node && node.cores > 0 && this.taskset) {
      const slots = Math.max(1, Math.min(job.nodePackingCount, node.cores));
      const width = Math.max(1, Math.floor(node.cores / slots));
      const first = (turn % slots) * width;
      return { argv: [this.taskset, "-c", `${first}-${first + width - 1}`, ...command], env };
    }
    return { argv: command, env };
  }

  /**
   * A pre/postprocess script or handler, run in the working directory with
   * the job's environment; its output goes to `<what>.log` there. Throws
   * when the command line does not parse.
   */
  script(what: "preprocess" | "postprocess", cmd: string, job: Job, state: JobState): Command & { outFile: string } {
    const outFile = join(job.workdir, `${what}.log`);
    // 0.x's header tells a handler's log from a postprocess's (transitions.py:474-478).
    const why = state === "RUN_ERROR" || state === "RUN_TIMEOUT" ? `# Invoked to handle ${state}\n` : "";
    appendFileSync(outFile, `# balsam: running ${cmd}\n${why}`);
    const argv = splitCommandLine(cmd, what);
    const env: Record<string, string> = { ...this.jobEnv(job), BALSAM_JOB_STATE: state };
    // 0.x's handler flags: the same script can tell an error or a timeout from a normal end.
    if (state === "RUN_ERROR") env.BALSAM_JOB_ERROR = "TRUE";
    if (state === "RUN_TIMEOUT") env.BALSAM_JOB_TIMEOUT = "TRUE";
    return { argv, env, outFile };
  }
}
