import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { useCliFixture } from "../support/fixture.js";
import { JobsApi } from "../../libs/client/jobs.js";
import { createApp } from "../../libs/store/index.js";
import { coll } from "../../libs/store/collections.js";

/**
 * Hardening item 9: what the launcher would refuse at run time — a command it
 * cannot split without a shell, a name too long for the working directory —
 * is refused when the app or job is made, in one line, exit 2, nothing changed.
 */
const f = useCliFixture("lcheck");
const { ctx } = f;
const J = "abcdef01-0000-4000-8000-00000000000a";

f.setup(async () => {
  await createApp(ctx.store, { name: "AMBS", executable: "/bin/true" });
  await new JobsApi(ctx.store, ctx.queues).add({ _id: J, name: "task", workflow: "TEST", application: "AMBS" });
});

const ADD = ["job", "--yes", "--application", "AMBS", "--workflow", "TEST"];
const APP = (name: string) => ["app", "--name", name, "--executable", "/bin/true"];

const CASES: Array<{ name: string; args: string[]; message: RegExp }> = [
  { name: "postprocess with a pipe", args: [...APP("p1"), "--postprocess", "echo a | cat"], message: /^balsam: postprocess 'echo a \| cat' contains shell syntax \('\|'\): the launcher runs it without a shell \(put the shell code in a script/ },
  { name: "preprocess with ;", args: [...APP("p2"), "--preprocess", "echo a; echo b"], message: /^balsam: preprocess 'echo a; echo b' contains shell syntax \(';'\)/ },
  { name: "executable with a redirection", args: ["app", "--name", "p3", "--executable", "python run.py > out"], message: /^balsam: executable 'python run.py > out' contains shell syntax \('>'\)/ },
  { name: "executable with an unterminated quote", args: ["app", "--name", "p4", "--executable", "\"my app"], message: /^balsam: executable '"my app' has an unterminated double quote/ },
  { name: "args with an unterminated quote", args: [...ADD, "--name", "x", "--args", '--x "unbalanced'], message: /^balsam: args '--x "unbalanced' has an unterminated double quote/ },
  { name: "args with an unterminated single quote", args: [...ADD, "--name", "x", "--args", "'{\"e0\": 1}"], message: /^balsam: args .* has an unterminated single quote/ },
  { name: "args with &&", args: [...ADD, "--name", "x", "--args", "a && b"], message: /^balsam: args 'a && b' contains shell syntax \('&&'\)/ },
  { name: "mpi flags with a command substitution", args: [...ADD, "--name", "x", "--mpi-flags", "-x $(id)"], message: /^balsam: mpi_flags '-x \$\(id\)' contains shell syntax/ },
  { name: "name too long for a working directory", args: [...ADD, "--name", "n".repeat(250)], message: /^balsam: job name is 250 characters long; at most 246 fit in a working directory name \(give a shorter --name\)$/ },
  { name: "modify args to an unterminated quote", args: ["modify", J, "args", '"x'], message: /^balsam: args '"x' has an unterminated double quote/ },
  { name: "modify name too long", args: ["modify", J, "name", "n".repeat(247)], message: /job name is 247 characters long/ },
  { name: "modify an app's postprocess to a pipeline", args: ["modify", "AMBS", "postprocess", "a | b", "--type", "apps"], message: /^balsam: postprocess 'a \| b' contains shell syntax/ },
];

async function snapshot(): Promise<unknown> {
  const jobs = await coll(ctx.store).jobs.find({}).sort({ _id: 1 }).toArray();
  const apps = await coll(ctx.store).apps.find({}).sort({ name: 1 }).toArray();
  return { jobs, apps, queued: await ctx.queues.pending("TEST") };
}

describe("commands the launcher would refuse are refused at creation", { concurrency: 4 }, () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const before = await snapshot();
      const r = await f.db.run(c.args);
      assert.equal(r.code, 2, `exit code of balsam ${c.args.join(" ")}; stderr: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`);
      assert.match(lines[0] ?? "", c.message);
      assert.equal(r.stdout, "");
      assert.deepEqual(await snapshot(), before);
    });
  }
});

test("what the launcher can run is accepted: quoted JSON, quoted spaces, globs, a 246-character name", async () => {
  const app = await f.db.run(["app", "--name", "quoted", "--executable", "/bin/echo", "--postprocess", `/bin/echo --note "a b" 'c d' *.txt`]);
  assert.equal(app.code, 0, app.stderr);
  const job = await f.db.run([...ADD, "--name", "n".repeat(246), "--args", `'{"e0": -5, "e1": 2}' --flag="x y"`]);
  assert.equal(job.code, 0, job.stderr);
  assert.match(job.stdout.trim(), /^[0-9a-f-]{36}$/);
});
