import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { quote } from "shell-quote";
import { waitFor } from "../support/context.js";
import { BALSAM_BIN } from "../support/cli.js";
import { useCliFixture } from "../support/fixture.js";
import { coll } from "../../libs/store/collections.js";
import { CHUNK_SIZE } from "../../libs/client/index.js";

/**
 * Issue 12's progress: a bar on a terminal and nothing off one, and Ctrl-C
 * during a long `rm` leaving every job either gone with its queue entry or
 * untouched, with a line saying how many were removed.
 */
const f = useCliFixture("progress");
const { ctx } = f;

f.setup(async () => {
  await f.balsam.apps.add({ name: "ok", executable: "/bin/true" });
});

/** Runs `balsam ARGS` under a pseudo-terminal (`script`), as a user at a terminal does; its output as the terminal shows it. */
function onTerminal(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((res, rej) => {
    const child = spawn("script", ["-qfec", quote([process.execPath, BALSAM_BIN, ...args]), "/dev/null"], {
      env: { ...process.env, ...f.db.env, BALSAM_DEBUG: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("error", rej);
    child.on("close", (code) => res({ code: code ?? 1, output }));
  });
}

describe("progress on a terminal, and Ctrl-C", () => {
  test("make_dummies and rm draw a bar on a terminal and nothing off one", async () => {
    const tty = await onTerminal(["make_dummies", "1500", "--wf", "TTY"]);
    assert.equal(tty.code, 0, tty.output);
    assert.match(tty.output, /█+ 100% \| ETA: 0s \| 1500\/1500/);
    assert.match(tty.output, /added 1500 dummy job\(s\) to workflow TTY/);

    const piped = await f.db.run(["make_dummies", "1500", "--wf", "PIPED"]);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stderr, "", "no bar off a terminal");
    assert.equal(piped.stdout, "added 1500 dummy job(s) to workflow PIPED\n");

    const rmTty = await onTerminal(["rm", "jobs", "--wf", "TTY", "--all", "--force"]);
    assert.equal(rmTty.code, 0, rmTty.output);
    assert.match(rmTty.output, /1500\/1500/);
    const rmPiped = await f.db.run(["rm", "jobs", "--wf", "PIPED", "--all", "--force"]);
    assert.equal(rmPiped.stderr, "");
    assert.equal(rmPiped.stdout, "removed 1500 job(s)\n");
  });

  test("Ctrl-C during a long rm: each job gone with its queue entry or untouched, and the count said", async () => {
    const total = 5000;
    await f.balsam.jobs.addChunks([Array.from({ length: total }, (_, i) => ({ name: `big${i}`, workflow: "BIG", application: "ok" }))]);
    // Added together: an entry per chunk of CHUNK_SIZE.
    assert.equal(await ctx.queues.pending("BIG"), total / CHUNK_SIZE);
    const child = spawn(process.execPath, [BALSAM_BIN, "rm", "jobs", "--wf", "BIG", "--all", "--force"], {
      env: { ...process.env, ...f.db.env, BALSAM_DEBUG: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
    // The first chunk's queue entries go right after its documents: the removal is under way.
    await waitFor(async () => (await ctx.queues.pending("BIG")) < total / CHUNK_SIZE, 120_000, "rm to start removing");
    child.kill("SIGINT");
    assert.equal(await exited, 130, stderr);
    const m = /^interrupted: removed (\d+) of 5000 job\(s\); the other (\d+) are untouched\n$/.exec(stdout);
    assert.ok(m, `stdout: ${stdout}; stderr: ${stderr}`);
    const removed = Number(m[1]);
    assert.ok(removed > 0 && removed < total, `removed ${removed}`);
    assert.equal(Number(m[2]), total - removed);
    const left = await coll(ctx.store).jobs.find({ workflow: "BIG" }, { projection: { _id: 1, attempts: 1, state: 1, chunk: 1 } }).toArray();
    assert.equal(left.length, total - removed);
    // Exactly the jobs left have queue entries: one per chunk they are in (a chunk split by the stop keeps its entry), each job's there.
    assert.equal(await ctx.queues.pending("BIG"), new Set(left.map((j) => j.chunk)).size);
    const has = await Promise.all(left.map((j) => ctx.queues.has({ id: j._id, workflow: "BIG", attempts: j.attempts, chunk: j.chunk })));
    assert.equal(has.filter(Boolean).length, left.length);
    assert.ok(left.every((j) => j.state === "READY"));
  });
});
