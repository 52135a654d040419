import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type RunResult } from "../support/cli.js";
import { useCliFixture } from "../support/fixture.js";
import { readStandin, updateSettings, writeStandin } from "../support/schedulers.js";
import { coll } from "../../libs/store/collections.js";

const f = useCliFixture("subbad");
const { ctx } = f;

const GOOD = ["-n", "1", "-q", "debug", "-t", "5", "-A", "test", "--job-mode", "serial", "--wf-filter", "BAD"];

function withFlag(flag: string, value: string): string[] {
  const args = [...GOOD];
  args[args.indexOf(flag) + 1] = value;
  return args;
}

async function nothingRecorded(r: RunResult, code: number, message: RegExp): Promise<void> {
  assert.equal(r.code, code, `exit code; stderr: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.equal(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
  assert.equal(r.stdout, "");
  assert.equal(await coll(ctx.store).queuedLaunches.countDocuments(), 0, "nothing recorded");
  const launches = join(f.db.dir, "launches");
  assert.deepEqual(existsSync(launches) ? readdirSync(launches) : [], [], "no launch directory left behind");
}

describe("submit-launch refuses bad input and records nothing", () => {
  before(async () => {
    await f.balsam.apps.add({ name: "echo", executable: "/bin/echo" });
    await f.balsam.jobs.add({ name: "one", workflow: "BAD", application: "echo" });
    updateSettings(f.db.dir, (s) => ({ ...s, scheduler: "slurm" }));
  });

  test("unknown job mode: usage error", async () => {
    await nothingRecorded(await f.db.run(["submit-launch", ...withFlag("--job-mode", "parallel")]), 2, /--job-mode must be serial or mpi, not 'parallel'/);
  });

  test("non-positive or non-numeric nodes and minutes: usage errors", async () => {
    await nothingRecorded(await f.db.run(["submit-launch", ...withFlag("-n", "0")]), 2, /-n\/--nodes must be a whole number ≥ 1, not 0/);
    await nothingRecorded(await f.db.run(["submit-launch", ...withFlag("-n", "-3")]), 2, /-n\/--nodes must be a whole number ≥ 1, not -3/);
    await nothingRecorded(await f.db.run(["submit-launch", ...withFlag("-n", "two")]), 2, /-n\/--nodes must be a whole number ≥ 1, not 'two'/);
    await nothingRecorded(await f.db.run(["submit-launch", ...withFlag("-t", "0")]), 2, /-t\/--time-minutes must be a whole number ≥ 1, not 0/);
    await nothingRecorded(await f.db.run(["submit-launch", ...withFlag("-t", "-10")]), 2, /-t\/--time-minutes must be a whole number ≥ 1, not -10/);
    await nothingRecorded(await f.db.run(["submit-launch", ...withFlag("-n", "99999999999999999999")]), 2, /^balsam: -n\/--nodes must be a whole number ≤ 9007199254740991, not 99999999999999999999$/m);
  });

  test("unknown scheduler, from the environment or from the settings file", async () => {
    await nothingRecorded(await f.db.run(["submit-launch", ...GOOD], { env: { BALSAM_SCHEDULER: "sge" } }), 1, /unknown scheduler 'sge'.*slurm, cobalt, pbs, lsf, local/);
    const file = join(f.db.dir, "settings.json");
    const saved = readFileSync(file, "utf8");
    try {
      writeFileSync(file, saved.replace('"scheduler": "slurm"', '"scheduler": "sge"'));
      await nothingRecorded(await f.db.run(["submit-launch", ...GOOD]), 1, /settings\.json: scheduler: /);
    } finally {
      writeFileSync(file, saved);
    }
  });

  test("a machine without the scheduler's command", async () => {
    // No bsub here: LSF is not installed on this machine.
    await nothingRecorded(await f.db.run(["submit-launch", ...GOOD], { env: { BALSAM_SCHEDULER: "lsf" } }), 1, /this machine has no 'bsub' on PATH/);
  });

  test("a --wf-filter with nothing that could run", async () => {
    // A stand-in sbatch, so the check is the same whether or not this machine
    // has Slurm (it must never be called).
    const bin = join(f.dir, "empty-wf");
    writeStandin(bin, "sbatch", { stdout: "Submitted batch job 1\n", exitCode: 0 });
    const env = { PATH: `${bin}:${process.env.PATH ?? ""}` };
    await nothingRecorded(await f.db.run(["submit-launch", ...withFlag("--wf-filter", "EMPTY")], { env }), 1, /no job of workflow EMPTY could run/);
    const done = await f.balsam.jobs.add({ name: "done", workflow: "DONE", application: "echo" });
    await f.balsam.jobs.setState(done._id, "USER_KILLED");
    await nothingRecorded(await f.db.run(["submit-launch", ...withFlag("--wf-filter", "DONE")], { env }), 1, /no job of workflow DONE could run/);
    assert.equal(readStandin(bin, "sbatch")?.calls ?? 0, 0);
  });

  test("the scheduler's rejection is shown (stand-in sbatch)", async () => {
    const bin = join(f.dir, "reject");
    writeStandin(bin, "sbatch", { stderr: "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified\n", exitCode: 1 });
    await nothingRecorded(
      await f.db.run(["submit-launch", ...GOOD], { env: { PATH: `${bin}:${process.env.PATH ?? ""}` } }),
      1,
      /sbatch refused the launch: sbatch: error: Batch job submission failed: Invalid account or account\/partition combination specified/,
    );
    assert.equal(readStandin(bin, "sbatch")?.calls, 1);
  });

  test("a newline in a value bound for the batch script is refused (it would start a line bash runs)", async () => {
    const bin = join(f.dir, "newline");
    writeStandin(bin, "sbatch", { stdout: "Submitted batch job 7\n", exitCode: 0 });
    const env = { PATH: `${bin}:${process.env.PATH ?? ""}` };
    const pwned = join(f.dir, "pwned");
    await nothingRecorded(
      await f.db.run(["submit-launch", ...withFlag("-q", `deb\ntouch ${pwned} #`)], { env }),
      2,
      /-q\/--queue contains a control character \("deb\\ntouch /,
    );
    await nothingRecorded(await f.db.run(["submit-launch", ...withFlag("-A", "proj\rx")], { env }), 2, /-A\/--project contains a control character/);
    assert.equal(readStandin(bin, "sbatch")?.calls ?? 0, 0);
    assert.equal(existsSync(pwned), false);
  });

  test("shell syntax in --sched-flags is a usage error", async () => {
    await nothingRecorded(await f.db.run(["submit-launch", ...GOOD, "--sched-flags", "--x; rm -rf /"]), 2, /--sched-flags .* contains shell syntax/);
  });
});
