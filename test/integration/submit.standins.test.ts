/**
 * Cobalt, PBS and LSF cannot be installed on this machine, so their commands
 * (qsub, qstat, bsub, bjobs) are recording stand-ins on PATH: small scripts
 * that keep the argv and the script they were given and print what the real
 * command prints. The tests check the submit command line, the rendered
 * script, and that states read back through the status command. Slurm runs
 * for real in submit.slurm.test.ts.
 */
import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { readFileSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { hostname } from "node:os";
import { BALSAM_BIN } from "../support/cli.js";
import { useCliFixture } from "../support/fixture.js";
import { waitFor } from "../support/context.js";
import { lsQueues, lsQueuesJson, readStandin, updateSettings, writeStandin } from "../support/schedulers.js";
import { coll } from "../../libs/store/collections.js";

const f = useCliFixture("standin");
const { ctx } = f;

interface Case {
  scheduler: "cobalt" | "pbs" | "lsf";
  submit: string;
  submitReply: string;
  id: string;
  status: string;
  statusReply: string;
  expectedArgv: (script: string, launchDir: string) => string[];
  /** How the serial branch starts one launcher per node. */
  perNode: RegExp;
}

const CASES: Case[] = [
  {
    scheduler: "cobalt",
    submit: "qsub",
    submitReply: "12345\n",
    id: "12345",
    status: "qstat",
    statusReply: "JobID  State\n=================\n12345  running\n",
    expectedArgv: (s, d) => ["-n", "4", "-t", "60", "-q", "debug-cache-quad", "-A", "datascience", "--jobname", "balsam", "-O", `${d}/cobalt`, "--attrs", "mcdram=cache:numa=quad", s],
    perNode: /aprun -n 4 -N 1 -cc none '?[^ ]*node'? '?[^ ]*balsam\.js'? launcher --wf-filter SI --job-mode serial --time-limit-minutes 54/,
  },
  {
    scheduler: "pbs",
    submit: "qsub",
    submitReply: "9876.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov\n",
    id: "9876.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov",
    status: "qstat",
    statusReply: [
      "Job id            Name             User              Time Use S Queue",
      "----------------  ---------------- ----------------  -------- - -----",
      "9876.polaris-pbs* balsam           me                00:00:01 R debug-cache-quad",
      "",
    ].join("\n"),
    expectedArgv: (s, d) => [
      "-l", "select=4", "-l", "place=scatter", "-l", "walltime=01:00:00", "-q", "debug-cache-quad", "-A", "datascience",
      "-N", "balsam", "-o", `${d}/output.txt`, "-j", "oe", "--attrs", "mcdram=cache:numa=quad", s,
    ],
    perNode: /mpiexec -n 4 -ppn 1 '?[^ ]*node'? '?[^ ]*balsam\.js'? launcher --wf-filter SI --job-mode serial --time-limit-minutes 54/,
  },
  {
    scheduler: "lsf",
    submit: "bsub",
    submitReply: "Job <777> is submitted to queue <debug-cache-quad>.\n",
    id: "777",
    status: "bjobs",
    statusReply: "777 RUN\n",
    expectedArgv: (s, d) => ["-nnodes", "4", "-W", "60", "-q", "debug-cache-quad", "-P", "datascience", "-J", "balsam", "-o", `${d}/output.txt`, "-cwd", d, "--attrs", "mcdram=cache:numa=quad", s],
    perNode: /jsrun -n 4 -r 1 -a 1 -c ALL_CPUS '?[^ ]*node'? '?[^ ]*balsam\.js'? launcher --wf-filter SI --job-mode serial --time-limit-minutes 54/,
  },
];

function pathWith(dir: string): NodeJS.ProcessEnv {
  return { PATH: `${dir}:${process.env.PATH ?? ""}` };
}

describe("submit-launch to Cobalt, PBS and LSF (recording stand-ins)", () => {
  before(async () => {
    await f.balsam.apps.add({ name: "echo", executable: "/bin/echo" });
    await f.balsam.jobs.add({ name: "one", workflow: "SI", application: "echo" });
  });

  for (const c of CASES) {
    test(`${c.scheduler}: the submit command line, the rendered script, the state read back`, async () => {
      const bin = join(f.dir, c.scheduler);
      writeStandin(bin, c.submit, { stdout: c.submitReply });
      writeStandin(bin, c.status, { stdout: c.statusReply });
      updateSettings(f.db.dir, (s) => ({ ...s, scheduler: c.scheduler }));

      const r = await f.db.run(
        ["submit-launch", "-n", "4", "-q", "debug-cache-quad", "-t", "60", "-A", "datascience", "--job-mode", "serial", "--wf-filter", "SI", "--sched-flags", "--attrs mcdram=cache:numa=quad"],
        { env: pathWith(bin) },
      );
      assert.equal(r.code, 0, r.stderr);
      const launchId = r.stdout.trim();
      const doc = await coll(ctx.store).queuedLaunches.findOne({ _id: launchId });
      assert.ok(doc, "the launch is recorded");
      assert.deepEqual(
        { schedulerId: doc.schedulerId, scheduler: doc.scheduler, queue: doc.queue, project: doc.project, nodes: doc.nodes, minutes: doc.wallTimeMinutes, mode: doc.jobMode, wf: doc.wfFilter, state: doc.state },
        { schedulerId: c.id, scheduler: c.scheduler, queue: "debug-cache-quad", project: "datascience", nodes: 4, minutes: 60, mode: "serial", wf: ["SI"], state: "queued" },
      );
      const launchDir = join(f.db.dir, "launches", launchId);
      assert.equal(doc.scriptPath, join(launchDir, "launch.sh"));

      const rec = readStandin(bin, c.submit);
      assert.ok(rec, `${c.submit} was called`);
      assert.deepEqual(rec.argv, c.expectedArgv(doc.scriptPath, launchDir));
      assert.equal(rec.script, readFileSync(doc.scriptPath, "utf8"), "the scheduler got the script kept in the launch directory");

      const script = rec.script!;
      execFileSync("bash", ["-n", doc.scriptPath]);
      assert.match(script, new RegExp(`^export BALSAM_DB_PATH=${f.db.dir.replace(/[/.]/g, "\\$&")}$`, "m"));
      assert.ok(script.includes(`${process.execPath} ${BALSAM_BIN} launcher`), "node and bin/f.balsam.js by absolute path");
      assert.match(script, c.perNode);
      assert.match(script, /else\n.*\n\s+\S+ \S+balsam\.js launcher --wf-filter SI --job-mode serial --time-limit-minutes 54\nfi/);
      assert.equal(readFileSync(join(f.db.dir, "templates", `${c.scheduler}.sh`), "utf8").includes("{{launcher}}"), true, "the template is kept in the database directory");

      const rows = await lsQueuesJson(f.db, pathWith(bin));
      const row = rows.find((x) => x.id === launchId);
      assert.equal(row?.state, "running", `${c.status} says it runs`);
      assert.ok(readStandin(bin, c.status)!.argv.some((a) => a.includes(c.id.split(".")[0]!)), `${c.status} was asked about ${c.id}`);
    });
  }

  test("pbs: a launch the scheduler no longer knows finished, or failed by its exit code", async () => {
    const bin = join(f.dir, "pbs-gone");
    writeStandin(bin, "qsub", { stdout: "555.server\n" });
    writeStandin(bin, "qstat", { stderr: "qstat: Unknown Job Id 555.server\n", exitCode: 153 });
    updateSettings(f.db.dir, (s) => ({ ...s, scheduler: "pbs" }));
    const first = await f.db.run(["submit-launch", "-n", "1", "-q", "q", "-t", "10", "-A", "p", "--job-mode", "mpi", "--wf-filter", "SI"], { env: pathWith(bin) });
    assert.equal(first.code, 0, first.stderr);
    writeStandin(bin, "qsub", { stdout: "556.server\n" });
    const second = await f.db.run(["submit-launch", "-n", "1", "-q", "q", "-t", "10", "-A", "p", "--job-mode", "mpi", "--wf-filter", "SI"], { env: pathWith(bin) });
    assert.equal(second.code, 0, second.stderr);
    const [ok, bad] = [first.stdout.trim(), second.stdout.trim()];
    writeFileSync(join(f.db.dir, "launches", ok, "exit-code"), "0\n");
    writeFileSync(join(f.db.dir, "launches", bad, "exit-code"), "3\n");
    const rows = await lsQueuesJson(f.db, pathWith(bin));
    assert.equal(rows.find((x) => x.id === ok)?.state, "finished");
    assert.equal(rows.find((x) => x.id === bad)?.state, "failed");
    const script = readFileSync(join(f.db.dir, "launches", ok, "launch.sh"), "utf8");
    assert.match(script, /--job-mode mpi --time-limit-minutes 9/);
  });

  test("pbs: asked about launches gone and one still queued together, qstat errs for those and lists the other: only the gone ones ended, failed without an exit code", async () => {
    const bin = join(f.dir, "pbs-mixed");
    updateSettings(f.db.dir, (s) => ({ ...s, scheduler: "pbs" }));
    const ids: string[] = [];
    for (const n of ["557", "558", "559"]) {
      writeStandin(bin, "qsub", { stdout: `${n}.server\n` });
      const r = await f.db.run(["submit-launch", "-n", "1", "-q", "q", "-t", "10", "-A", "p", "--job-mode", "mpi", "--wf-filter", "SI"], { env: pathWith(bin) });
      assert.equal(r.code, 0, r.stderr);
      ids.push(r.stdout.trim());
    }
    const [gone, queued, killed] = ids as [string, string, string];
    // What PBS's qstat does with several ids, one unknown: the rows it knows on stdout, the error on stderr, exit 153.
    writeStandin(bin, "qstat", {
      stdout: ["Job id            Name             User              Time Use S Queue", "----------------  ---------------- ----------------  -------- - -----", "558.server        balsam           me                00:00:00 Q q", ""].join("\n"),
      stderr: "qstat: Unknown Job Id 557.server\nqstat: Unknown Job Id 559.server\n",
      exitCode: 153,
    });
    writeFileSync(join(f.db.dir, "launches", gone, "exit-code"), "0\n");
    const rows = await lsQueuesJson(f.db, pathWith(bin));
    assert.equal(rows.find((x) => x.id === gone)?.state, "finished");
    assert.equal(rows.find((x) => x.id === queued)?.state, "queued", "the launch qstat still lists keeps its state");
    assert.equal(rows.find((x) => x.id === killed)?.state, "failed", "gone without its script's exit code: killed, not finished");
    assert.ok(readStandin(bin, "qstat")!.argv.includes("558.server"));
  });

  test("a site's edit of the template is used, and an unknown placeholder refused with nothing recorded", async () => {
    const bin = join(f.dir, "pbs-edit");
    writeStandin(bin, "qsub", { stdout: "600.server\n" });
    writeStandin(bin, "qstat", { stdout: "" });
    updateSettings(f.db.dir, (s) => ({ ...s, scheduler: "pbs" }));
    const tpl = join(f.db.dir, "templates", "pbs.sh");
    assert.ok(existsSync(tpl));
    const original = readFileSync(tpl, "utf8");
    writeFileSync(tpl, original.replace("mpiexec -n {{nodes}} -ppn 1 {{launcher}}", "pbsdsh -u {{launcher}}"));
    const r = await f.db.run(["submit-launch", "-n", "2", "-q", "q", "-t", "10", "-A", "p", "--job-mode", "serial", "--wf-filter", "SI"], { env: pathWith(bin) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(readStandin(bin, "qsub")!.script!, /pbsdsh -u \S+ \S+balsam\.js launcher/);

    const before = await coll(ctx.store).queuedLaunches.countDocuments();
    writeFileSync(tpl, original + "\necho {{gpus_per_node}}\n");
    const bad = await f.db.run(["submit-launch", "-n", "2", "-q", "q", "-t", "10", "-A", "p", "--job-mode", "serial", "--wf-filter", "SI"], { env: pathWith(bin) });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /pbs\.sh uses unknown placeholder\(s\): \{\{gpus_per_node\}\}/);
    assert.equal(await coll(ctx.store).queuedLaunches.countDocuments(), before);
    writeFileSync(tpl, original);
  });

  test("the service holds its submissions after each refused one, doubling, and 10 min after one that may have queued anyway", async () => {
    const bin = join(f.dir, "pbs-refusing");
    mkdirSync(bin, { recursive: true });
    const times = join(bin, "qsub.times");
    // A qsub that refuses (a queue limit), or once `garbage` exists answers 0 with no id: the launch may be queued.
    writeFileSync(join(bin, "qsub"), `#!/bin/bash\ndate +%s%N >> '${times}'\nif [ -f '${bin}/garbage' ]; then echo "submitted, somehow"; exit 0; fi\necho "qsub: Job violates queue and/or server resource limits" >&2\nexit 38\n`, { mode: 0o755 });
    writeStandin(bin, "qstat", { stdout: "" });
    updateSettings(f.db.dir, (s) => ({ ...s, scheduler: "pbs", service: { ...s.service, autoSubmit: true, queue: "q", project: "p", maxQueuedLaunches: 100, maxNodes: 1, wallTimeMinutes: 10, wfFilter: ["SI"], intervalSeconds: 1 } }));
    const before = await coll(ctx.store).queuedLaunches.countDocuments();
    const svc = spawn(process.execPath, [BALSAM_BIN, "service", "--interval-seconds", "1"], { env: { ...process.env, ...f.db.env, ...pathWith(bin) }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    svc.stdout.on("data", (d: Buffer) => (out += d.toString()));
    svc.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number>((r) => svc.on("close", (code, sig) => r(code ?? (sig ? 128 : 1))));
    try {
      await waitFor(() => out.includes("(2 failed submission(s) in a row)"), 30_000, `two refused submissions:\n${out}`);
      assert.match(out, /submitting a launcher failed: qsub refused the launch: qsub: Job violates queue .*; not submitting again for 2 s \(1 failed submission\(s\) in a row\)/);
      assert.match(out, /not submitting again for 4 s \(2 failed submission\(s\) in a row\)/);
      const [t1, t2] = readFileSync(times, "utf8").trim().split("\n").map((t) => Number(t) / 1e6);
      assert.ok(t2! - t1! >= 2000, `the second submission came ${Math.round(t2! - t1!)} ms after the first, inside its 2 s hold`);

      writeFileSync(join(bin, "garbage"), "");
      await waitFor(() => out.includes("(3 failed submission(s) in a row)"), 30_000, `a third submission:\n${out}`);
      const third = /submitting a launcher failed: (.*) \(the launch may be queued; its script is (\S+)\); not submitting again for 600 s \(3 failed/.exec(out);
      assert.ok(third, out);
      assert.ok(existsSync(third[2]!), "the script a scheduler may have queued stays");
      assert.equal(await coll(ctx.store).queuedLaunches.countDocuments(), before, "nothing recorded of any of them");
    } finally {
      svc.kill("SIGTERM");
      assert.equal(await exited, 0, out);
      updateSettings(f.db.dir, (s) => ({ ...s, service: { ...s.service, autoSubmit: false } }));
    }
  });

  test("local: a launch is a process of the host that submitted it; another host leaves its state alone and says so", async () => {
    const now = new Date();
    const base = { scheduler: "local", queue: "local", project: "", nodes: 1, wallTimeMinutes: 10, jobMode: "serial" as const, wfFilter: [], state: "running", scriptPath: "/nowhere/launch.sh", submittedAt: now, updatedAt: now, exitCode: null };
    // A pid no process has here (above the kernel's pid_max default of 4194304).
    const there = { ...base, _id: `there-${Date.now()}`, schedulerId: "4194400", host: `not-${hostname()}` };
    const here = { ...base, _id: `here-${Date.now()}`, schedulerId: "4194401", host: hostname() };
    await coll(ctx.store).queuedLaunches.insertMany([there, here]);
    const r = await lsQueues(f.db, true);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as Array<{ id: string; state: string }>;
    assert.equal(rows.find((x) => x.id === there._id)?.state, "running", "another host's process table says nothing of it");
    assert.match(r.stderr, new RegExp(`1 local launch\\(es\\) of another host \\(not-${hostname()}\\) can be refreshed only there`));
    assert.equal(rows.find((x) => x.id === here._id)?.state, "failed", "this host's launch whose process is gone, with no exit code, ended");
  });

  test("local scheduler on a machine with a batch submit command: submit-launch warns that the launcher runs here, not in the queue", async () => {
    const bin = join(f.dir, "has-sbatch");
    writeStandin(bin, "sbatch", { stdout: "Submitted batch job 1\n" });
    updateSettings(f.db.dir, (s) => ({ ...s, scheduler: "local" }));
    // A workflow with no job: refused after the warning, so nothing starts here.
    const r = await f.db.run(["submit-launch", "-n", "4", "-q", "debug-cache-quad", "-t", "60", "-A", "datascience", "--job-mode", "serial", "--wf-filter", "NOJOBS"], { env: pathWith(bin) });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^balsam: warning: this database's scheduler is local: the launcher runs on this machine, not in queue debug-cache-quad; this machine has sbatch: set "scheduler" in \S+settings\.json/m);
    assert.equal(readStandin(bin, "sbatch"), undefined, "the warning submits nothing to the batch queue itself");
  });
});
