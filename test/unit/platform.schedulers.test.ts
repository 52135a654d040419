import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, UsageError } from "../../libs/errors/index.js";
import {
  SCHEDULER_NAMES,
  launcherMinutes,
  lookupState,
  renderTemplate,
  schedulerAdapter,
  splitSchedFlags,
  templateValues,
  type LaunchScriptSpec,
} from "../../libs/platform/index.js";

const OPTS = { nodes: 4, queue: "debug-cache-quad", wallTimeMinutes: 60, project: "datascience", launchDir: "/db/launches/L1", schedFlags: ["--attrs", "ssds=required"] };

function spec(over: Partial<LaunchScriptSpec> = {}): LaunchScriptSpec {
  return {
    launchId: "L1",
    scheduler: "slurm",
    nodes: 4,
    queue: "debug",
    project: "proj",
    wallTimeMinutes: 60,
    jobMode: "serial",
    workflows: ["TEST"],
    dbPath: "/data/my db",
    launchDir: "/data/my db/launches/L1",
    nodeBin: "/usr/bin/node",
    balsamBin: "/opt/balsam/bin/balsam.js",
    ...over,
  };
}

describe("launcherMinutes", () => {
  test("leaves 10%, at least a minute, never nothing", () => {
    assert.equal(launcherMinutes(60), 54);
    assert.equal(launcherMinutes(5), 4);
    assert.equal(launcherMinutes(2), 1);
    assert.equal(launcherMinutes(1), 0.5);
    assert.equal(launcherMinutes(15), 13);
  });
});

describe("submit command lines", () => {
  test("slurm", () => {
    assert.deepEqual(schedulerAdapter("slurm").submitArgv("/s.sh", OPTS), [
      "sbatch", "-N", "4", "-p", "debug-cache-quad", "-t", "60", "-A", "datascience", "-J", "balsam",
      "-o", "/db/launches/L1/output.txt", "-D", "/db/launches/L1", "--attrs", "ssds=required", "/s.sh",
    ]);
  });
  test("cobalt", () => {
    assert.deepEqual(schedulerAdapter("cobalt").submitArgv("/s.sh", OPTS), [
      "qsub", "-n", "4", "-t", "60", "-q", "debug-cache-quad", "-A", "datascience", "--jobname", "balsam",
      "-O", "/db/launches/L1/cobalt", "--attrs", "ssds=required", "/s.sh",
    ]);
  });
  test("pbs: walltime as HH:MM:SS, one chunk per node", () => {
    assert.deepEqual(schedulerAdapter("pbs").submitArgv("/s.sh", { ...OPTS, wallTimeMinutes: 90, schedFlags: [] }), [
      "qsub", "-l", "select=4", "-l", "place=scatter", "-l", "walltime=01:30:00", "-q", "debug-cache-quad", "-A", "datascience",
      "-N", "balsam", "-o", "/db/launches/L1/output.txt", "-j", "oe", "/s.sh",
    ]);
  });
  test("lsf", () => {
    assert.deepEqual(schedulerAdapter("lsf").submitArgv("/s.sh", { ...OPTS, schedFlags: [] }), [
      "bsub", "-nnodes", "4", "-W", "60", "-q", "debug-cache-quad", "-P", "datascience", "-J", "balsam",
      "-o", "/db/launches/L1/output.txt", "-cwd", "/db/launches/L1", "/s.sh",
    ]);
  });
  test("an empty project leaves the account flag out", () => {
    assert.ok(!schedulerAdapter("slurm").submitArgv("/s.sh", { ...OPTS, project: "" }).includes("-A"));
    assert.ok(!schedulerAdapter("lsf").submitArgv("/s.sh", { ...OPTS, project: "" }).includes("-P"));
  });
});

describe("submit output", () => {
  test("each scheduler's id", () => {
    assert.equal(schedulerAdapter("slurm").parseSubmitOutput("Submitted batch job 4242\n"), "4242");
    assert.equal(schedulerAdapter("slurm").parseSubmitOutput("4242;cluster\n"), "4242");
    assert.equal(schedulerAdapter("cobalt").parseSubmitOutput("Job routed to queue \"debug-cache-quad\".\n12345\n"), "12345");
    assert.equal(schedulerAdapter("pbs").parseSubmitOutput("9876.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov\n"), "9876.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov");
    assert.equal(schedulerAdapter("lsf").parseSubmitOutput("Job <777> is submitted to queue <batch>.\n"), "777");
    assert.equal(schedulerAdapter("local").parseSubmitOutput("31337\n"), "31337");
  });
  test("no id is a clear error", () => {
    assert.throws(() => schedulerAdapter("slurm").parseSubmitOutput("sbatch: something odd\n"), ConfigError);
    assert.throws(() => schedulerAdapter("lsf").parseSubmitOutput(""), /cannot find the job id in bsub's output: \(nothing\)/);
  });
});

describe("status", () => {
  test("slurm: squeue -t all, every state normalised", () => {
    const a = schedulerAdapter("slurm");
    assert.deepEqual(a.statusArgv(["1", "2"]), ["squeue", "-h", "-t", "all", "-o", "%i|%T", "-j", "1,2"]);
    const m = a.parseStatus("1|PENDING\n2|RUNNING\n3|COMPLETED\n4|TIMEOUT\n5|CANCELLED\n6|WEIRD\n");
    assert.deepEqual([...m], [["1", "queued"], ["2", "running"], ["3", "finished"], ["4", "failed"], ["5", "failed"], ["6", "unknown"]]);
    assert.match("slurm_load_jobs error: Invalid job id specified", a.goneOnError);
  });
  test("cobalt", () => {
    const m = schedulerAdapter("cobalt").parseStatus("JobID   State\n=========\n12   queued\n13   running\n14   user_hold\n15   exiting\n");
    assert.deepEqual([...m], [["12", "queued"], ["13", "running"], ["14", "queued"], ["15", "running"]]);
  });
  test("pbs: the table, truncated ids matched by their number", () => {
    const out = [
      "Job id            Name             User              Time Use S Queue",
      "----------------  ---------------- ----------------  -------- - -----",
      "9876.polaris-pbs* balsam           me                00:00:00 R debug",
      "9877.polaris-pbs* balsam           me                       0 Q debug",
      "9878.polaris-pbs* balsam           me                00:10:00 F debug",
    ].join("\n");
    const m = schedulerAdapter("pbs").parseStatus(out);
    assert.equal(lookupState(m, "9876.polaris-pbs-01.hsn"), "running");
    assert.equal(lookupState(m, "9877.polaris-pbs-01.hsn"), "queued");
    assert.equal(lookupState(m, "9878.polaris-pbs-01.hsn"), "finished");
    assert.equal(lookupState(m, "1.x"), undefined);
  });
  test("lsf", () => {
    const a = schedulerAdapter("lsf");
    assert.deepEqual(a.statusArgv(["7", "8"]), ["bjobs", "-noheader", "-a", "-o", "jobid stat", "7", "8"]);
    assert.deepEqual([...a.parseStatus("7 PEND\n8 RUN\n9 DONE\n10 EXIT\n")], [["7", "queued"], ["8", "running"], ["9", "finished"], ["10", "failed"]]);
  });
  test("local: a live pid is running, a zombie finished", () => {
    assert.deepEqual([...schedulerAdapter("local").parseStatus("  123 S\n  124 Z\n")], [["123", "running"], ["124", "finished"]]);
  });
});

describe("templates", () => {
  test("every placeholder of every default template is known, and the scripts parse", () => {
    const dir = mkdtempSync(join(tmpdir(), "balsam-tpl-"));
    try {
      for (const name of SCHEDULER_NAMES) {
        for (const jobMode of ["serial", "mpi"] as const) {
          const text = renderTemplate(schedulerAdapter(name).defaultTemplate, templateValues(spec({ scheduler: name, jobMode })));
          assert.doesNotMatch(text, /\{\{/);
          const p = join(dir, `${name}-${jobMode}.sh`);
          writeFileSync(p, text);
          execFileSync("bash", ["-n", p]);
          assert.match(text, /export BALSAM_DB_PATH='\/data\/my db'/);
          assert.ok(text.includes(`/usr/bin/node /opt/balsam/bin/balsam.js launcher --wf-filter TEST --job-mode ${jobMode} --time-limit-minutes 54`), text);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test("serial mode starts one launcher per node through the site's launcher", () => {
    const render = (name: string) => renderTemplate(schedulerAdapter(name).defaultTemplate, templateValues(spec()));
    assert.match(render("slurm"), /srun --ntasks-per-node=1 -N 4 -n 4 /);
    assert.match(render("cobalt"), /aprun -n 4 -N 1 -cc none /);
    assert.match(render("pbs"), /mpiexec -n 4 -ppn 1 /);
    assert.match(render("lsf"), /jsrun -n 4 -r 1 -a 1 /);
    assert.match(render("lsf"), /mpirun -ppn 1 -n 4 /);
  });
  test("submit-launch --tag: the launcher line carries the tags, shell-quoted", () => {
    const v = templateValues(spec({ tags: { run: "B", note: "a b" } }));
    assert.ok(v.launcher.endsWith(" --time-limit-minutes 54 --tag run\\=B --tag 'note=a b'"), v.launcher);
    assert.ok(!templateValues(spec()).launcher.includes("--tag"));
  });
  test("no workflow filter: --consume-all", () => {
    const v = templateValues(spec({ workflows: [] }));
    assert.equal(v.wf_filter, "--consume-all");
    assert.match(v.launcher, /launcher --consume-all --job-mode serial/);
  });
  test("an unknown placeholder is an error naming it", () => {
    assert.throws(() => renderTemplate("echo {{nodes}} {{gpus}}", { nodes: "1" }, "/db/templates/slurm.sh"), /slurm\.sh uses unknown placeholder\(s\): \{\{gpus\}\}/);
    // Misspelt: not a name this version could ever know, refused all the same rather than left for bash to run.
    assert.throws(() => renderTemplate("cd {{launch-id}} && {{ wf filter }} {{}}", { launch_id: "x" }), /unknown placeholder\(s\): \{\{launch-id\}\}, \{\{wf filter\}\}, \{\{\}\}/);
    assert.equal(renderTemplate("cd {{ launch_id }}", { launch_id: "x" }), "cd x");
  });
});

describe("sched flags and scheduler names", () => {
  test("split like a shell, variables kept as written", () => {
    assert.deepEqual(splitSchedFlags(`--constraint "knl quad" --mail-user=$USER`), ["--constraint", "knl quad", "--mail-user=$USER"]);
    assert.deepEqual(splitSchedFlags("   "), []);
  });
  test("shell operators are refused", () => {
    assert.throws(() => splitSchedFlags("--x; rm -rf /"), UsageError);
  });
  test("an unknown scheduler names the known ones", () => {
    assert.throws(() => schedulerAdapter("sge"), /unknown scheduler 'sge'/);
  });
});

test("a value with a control character is refused wherever a template puts it", () => {
  assert.throws(() => renderTemplate("#SBATCH -q {{queue}}\n", { queue: "'deb\ntouch /tmp/pwned #'" }), /the value for \{\{queue\}\} contains a control character/);
  assert.throws(() => renderTemplate("cd {{launch_dir}}\n", { launch_dir: "/x\u0000y" }), /\{\{launch_dir\}\} contains a control character/);
  assert.equal(renderTemplate("#SBATCH -q {{queue}}\n", { queue: "debug" }), "#SBATCH -q debug\n");
});
