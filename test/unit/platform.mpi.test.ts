import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { UsageError } from "../../libs/errors/index.js";
import { buildMpiCommand, detectMpiKind, type MpiKind, type MpiLaunchSpec } from "../../libs/platform/index.js";

function spec(overrides: Partial<MpiLaunchSpec> = {}): MpiLaunchSpec {
  return {
    hosts: ["h1", "h2"],
    ranksPerNode: 4,
    threadsPerRank: 2,
    threadsPerCore: 1,
    cpuAffinity: "depth",
    mpiFlags: ["--verbose"],
    command: ["./app", "--in", "x.dat"],
    env: { APP_MODE: "fast" },
    ...overrides,
  };
}

const APP = ["./app", "--in", "x.dat"];
const DEFAULT_ENV = { APP_MODE: "fast", OMP_NUM_THREADS: "2" };

/** [test name, kind, spec overrides, argv wanted, env wanted (checked when given)] */
const argvCases: Array<[string, MpiKind, Partial<MpiLaunchSpec>, string[], Record<string, string>?]> = [
  [
    "Open MPI: depth affinity",
    "openmpi",
    {},
    ["mpirun", "-n", "8", "--host", "h1:4,h2:4", "--map-by", "slot:PE=2", "--bind-to", "core:overload-allowed", "--oversubscribe", "-x", "APP_MODE", "-x", "OMP_NUM_THREADS", "--verbose", ...APP],
    DEFAULT_ENV,
  ],
  [
    "Open MPI: no affinity",
    "openmpi",
    { cpuAffinity: "none", hosts: ["h1"], ranksPerNode: 3, mpiFlags: [] },
    ["mpirun", "-n", "3", "--host", "h1:3", "--map-by", "slot", "--bind-to", "none", "--oversubscribe", "-x", "APP_MODE", "-x", "OMP_NUM_THREADS", ...APP],
  ],
  [
    "MPICH: depth affinity",
    "mpich",
    {},
    ["mpiexec", "-n", "8", "-ppn", "4", "-hosts", "h1,h2", "-bind-to", "core:2", "-envlist", "APP_MODE,OMP_NUM_THREADS", "--verbose", ...APP],
    DEFAULT_ENV,
  ],
  [
    "MPICH: no affinity leaves binding to Hydra",
    "mpich",
    { cpuAffinity: "none", env: {} },
    ["mpiexec", "-n", "8", "-ppn", "4", "-hosts", "h1,h2", "-envlist", "OMP_NUM_THREADS", "--verbose", ...APP],
  ],
  [
    "Cray aprun: depth affinity with numeric node ids",
    "cray",
    { hosts: ["3834", "3835"], ranksPerNode: 64, threadsPerRank: 4, threadsPerCore: 2 },
    ["aprun", "-n", "128", "-N", "64", "-d", "4", "-j", "2", "-cc", "depth", "-L", "3834,3835", "--verbose", ...APP],
    { APP_MODE: "fast", OMP_NUM_THREADS: "4" },
  ],
  [
    "Cray aprun: no affinity; nid host names become node ids",
    "cray",
    { hosts: ["nid00012", "0013"], cpuAffinity: "none", ranksPerNode: 1, threadsPerRank: 1, mpiFlags: [] },
    ["aprun", "-n", "2", "-N", "1", "-d", "1", "-j", "1", "-cc", "none", "-L", "12,13", ...APP],
  ],
  [
    "Slurm srun: depth affinity",
    "slurm",
    {},
    ["srun", "-n", "8", "-N", "2", "--ntasks-per-node=4", "--cpus-per-task=2", "--cpu-bind=cores", "--nodelist=h1,h2", "--export=ALL", "--verbose", ...APP],
    DEFAULT_ENV,
  ],
  [
    "Slurm srun: no affinity",
    "slurm",
    { cpuAffinity: "none", hosts: ["nid001"], ranksPerNode: 1, threadsPerRank: 16, mpiFlags: [] },
    ["srun", "-n", "1", "-N", "1", "--ntasks-per-node=1", "--cpus-per-task=16", "--cpu-bind=none", "--nodelist=nid001", "--export=ALL", ...APP],
  ],
];

describe("buildMpiCommand: argv", () => {
  for (const [what, kind, overrides, argv, env] of argvCases) {
    test(what, () => {
      const cmd = buildMpiCommand(kind, spec(overrides));
      assert.deepEqual(cmd.argv, argv);
      if (env) assert.deepEqual(cmd.env, env);
    });
  }
});

describe("buildMpiCommand: Open MPI", () => {
  test("asRoot adds Open MPI's two consent variables and forwards them", () => {
    const cmd = buildMpiCommand("openmpi", spec({ asRoot: true, env: {} }));
    assert.deepEqual(cmd.env, {
      OMP_NUM_THREADS: "2",
      OMPI_ALLOW_RUN_AS_ROOT: "1",
      OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1",
    });
    const forwarded = cmd.argv.flatMap((a, i) => (a === "-x" ? [cmd.argv[i + 1]] : []));
    assert.deepEqual(forwarded, ["OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "OMP_NUM_THREADS"]);
  });

  test("PE is capped at cpusPerNode", () => {
    const cmd = buildMpiCommand("openmpi", spec({ threadsPerRank: 8, cpusPerNode: 2 }));
    assert.ok(cmd.argv.includes("slot:PE=2"));
    assert.equal(cmd.env.OMP_NUM_THREADS, "8");
  });
});

describe("buildMpiCommand: MPICH", () => {
  test("asRoot is Open MPI's business only", () => {
    assert.deepEqual(buildMpiCommand("mpich", spec({ asRoot: true, env: {} })).env, { OMP_NUM_THREADS: "2" });
  });
});

describe("buildMpiCommand: Cray aprun", () => {
  test("a host that is not a node id throws", () => {
    assert.throws(() => buildMpiCommand("cray", spec({ hosts: ["login1"] })), /aprun needs numeric node ids/);
  });
});

describe("buildMpiCommand: OMP_NUM_THREADS", () => {
  test("always equals threadsPerRank, even if the caller set it", () => {
    for (const kind of ["openmpi", "mpich", "cray", "slurm"] as MpiKind[]) {
      const cmd = buildMpiCommand(kind, spec({ hosts: ["1"], threadsPerRank: 3, env: { OMP_NUM_THREADS: "99" } }));
      assert.equal(cmd.env.OMP_NUM_THREADS, "3", kind);
    }
  });
});

describe("buildMpiCommand: validation", () => {
  const kinds: MpiKind[] = ["openmpi", "mpich", "cray", "slurm"];
  const bad: Array<[string, Partial<MpiLaunchSpec>, RegExp]> = [
    ["no hosts", { hosts: [] }, /at least one host/],
    ["repeated host", { hosts: ["1", "1"] }, /listed twice/],
    ["ranksPerNode 0", { ranksPerNode: 0 }, /ranksPerNode must be a whole number >= 1, got 0/],
    ["ranksPerNode fractional", { ranksPerNode: 1.5 }, /ranksPerNode/],
    ["threadsPerRank 0", { threadsPerRank: 0 }, /threadsPerRank must be a whole number >= 1, got 0/],
    ["threadsPerCore 0", { threadsPerCore: 0 }, /threadsPerCore/],
    ["cpusPerNode 0", { cpusPerNode: 0 }, /cpusPerNode/],
    ["empty command", { command: [] }, /needs a command/],
    ["bad env name", { env: { "A,B": "1" } }, /not valid/],
  ];
  for (const [what, overrides, message] of bad) {
    test(what, () => {
      for (const kind of kinds) {
        assert.throws(
          () => buildMpiCommand(kind, spec({ hosts: ["1"], ...overrides })),
          (err: unknown) => err instanceof UsageError && message.test(err.message),
          `${kind}: ${what}`,
        );
      }
    });
  }
});

describe("detectMpiKind", () => {
  test("Open MPI", () => {
    assert.equal(detectMpiKind("mpirun (Open MPI) 4.1.4\n\nReport bugs to http://www.open-mpi.org/community/help/\n"), "openmpi");
    assert.equal(detectMpiKind("mpirun (Open MPI) 5.0.3"), "openmpi");
    assert.equal(detectMpiKind("mpiexec (OpenRTE) 2.1.1"), "openmpi");
  });

  test("MPICH / Hydra", () => {
    assert.equal(detectMpiKind("HYDRA build details:\n    Version:                                 4.0.2"), "mpich");
    assert.equal(detectMpiKind("Version: 4.1\nMPICH Release date: ..."), "mpich");
  });

  test("Intel MPI is Hydra", () => {
    assert.equal(detectMpiKind("Intel(R) MPI Library for Linux* OS, Version 2021.10 Build 20230619"), "mpich");
  });

  test("anything else is unknown", () => {
    assert.equal(detectMpiKind(""), undefined);
    assert.equal(detectMpiKind("bash: mpirun: command not found"), undefined);
  });
});
