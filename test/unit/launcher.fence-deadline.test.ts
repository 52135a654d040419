import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor, alive } from "../support/context.js";
import { ProcessSupervisor, type FenceView, type RunOutcome } from "../../services/launcher/runner.js";
import { monoMs } from "../../services/launcher/spawner.js";

/**
 * The fence's kill (DESIGN §6.2): a job's processes die at its deadline, on
 * the spawn helper's own timer (or the watchdog's, without the helper), with
 * no help from the launcher's event loop; only a moved deadline saves them.
 */
let dir: string;
const deadlines = new Map<string, number>();
const view: FenceView = { deadline: (k) => deadlines.get(k), why: (k) => `fenced: test ${k}` };

/** A job leading its session: a child in its group, one in a group of its own (as mpirun's ranks), then it waits. */
function job(name: string): { argv: string[]; pids: string; out: string } {
  const pids = join(dir, `${name}.pids`);
  const script = join(dir, `${name}.sh`);
  writeFileSync(script, `#!/bin/bash\ntrap 'echo term >> ${pids}.term; exit 0' TERM\nsleep 300 & a=$!\nset -m; sleep 300 & b=$!; set +m\necho "$$ $a $b" > ${pids}\nwhile :; do sleep 0.05; done\n`, { mode: 0o755 });
  return { argv: [script], pids, out: join(dir, `${name}.out`) };
}

async function pidsOf(file: string): Promise<number[]> {
  await waitFor(() => existsSync(file) && readFileSync(file, "utf8").endsWith("\n"), 10_000, `${file} to be written`);
  return readFileSync(file, "utf8").trim().split(" ").map(Number);
}

/** Starts `name` under `sup` with a deadline `inMs` from now; its outcome, when it ended, and its pids. */
async function fencedRun(sup: ProcessSupervisor, name: string, inMs: number, moveAfter?: { atMs: number; toMs: number }) {
  const j = job(name);
  const t0 = monoMs();
  deadlines.set(name, t0 + inMs);
  const h = sup.run({ argv: j.argv, cwd: dir, env: {}, outFile: j.out, fenceKey: name });
  const pids = await pidsOf(j.pids);
  if (moveAfter) {
    await waitFor(() => monoMs() >= t0 + moveAfter.atMs, 10_000, "the time to move the deadline");
    deadlines.set(name, t0 + moveAfter.toMs);
    sup.moveDeadlines([name], t0 + moveAfter.toMs);
  }
  const outcome: RunOutcome = await h.done;
  return { outcome, endedMs: monoMs() - t0, pids, j };
}

const FENCE_LINE = /^balsam: fenced at \d{4}-\d\d-\d\dT[\d:]+Z: the launcher could not renew this job's lease in time/;

async function assertFenced(r: Awaited<ReturnType<typeof fencedRun>>, name: string): Promise<void> {
  assert.equal(r.outcome.fenced, true, JSON.stringify(r.outcome));
  assert.equal(r.outcome.lost, `fenced: test ${name}`);
  // The watchdog writes it after its sweep, which the launcher may hear of first.
  const last = () => (existsSync(r.j.out) ? readFileSync(r.j.out, "utf8").trim().split("\n").pop()! : "");
  await waitFor(() => FENCE_LINE.test(last()), 5000, `the fence line in ${r.j.out}`);
}

/** Runs `body`, then closes `sup` whatever happened. */
async function closing(sup: ProcessSupervisor, body: (sup: ProcessSupervisor) => Promise<void>): Promise<void> {
  try {
    await body(sup);
  } finally {
    await sup.close();
  }
}

async function assertSessionGone(r: Awaited<ReturnType<typeof fencedRun>>): Promise<void> {
  await waitFor(() => r.pids.every((p) => !alive(p)), 5000, `processes ${r.pids.join(", ")} to be gone`);
}

/** The job `name` is fenced at its deadline `inMs` from its start, not before, and its whole session dies. */
async function assertKilledAtDeadline(sup: ProcessSupervisor, name: string, inMs: number): Promise<void> {
  const r = await fencedRun(sup, name, inMs);
  await assertFenced(r, name);
  assert.ok(r.endedMs >= inMs, `ended ${r.endedMs} ms after its start, before its deadline`);
  await assertSessionGone(r);
}

describe("fence deadlines", () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "balsam-fence-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("the helper kills a job's whole session at its deadline, not before; the job's output says so", async () => {
    await closing(ProcessSupervisor.start(() => undefined, { fence: view }), (sup) => assertKilledAtDeadline(sup, "helper", 1200));
  });

  test("a deadline moved before it passes keeps the job running until the new one", async () => {
    await closing(ProcessSupervisor.start(() => undefined, { fence: view }), async (sup) => {
      const r = await fencedRun(sup, "moved", 800, { atMs: 300, toMs: 2500 });
      await assertFenced(r, "moved");
      assert.ok(r.endedMs >= 2500, `ended ${r.endedMs} ms after its start, before its moved deadline`);
    });
  });

  test("with a SIGTERM lead, the job is told SIGTERM first (mpirun passes it to every rank); if it exits then, the rest of its session is killed at once", async () => {
    await closing(ProcessSupervisor.start(() => undefined, { fence: view, termLeadMs: 600 }), async (sup) => {
      const r = await fencedRun(sup, "lead", 1500);
      await assertFenced(r, "lead");
      assert.ok(existsSync(`${r.j.pids}.term`), "SIGTERM came before the kill");
      assert.ok(r.endedMs >= 900, `ended ${r.endedMs} ms after its start`);
      await assertSessionGone(r);
    });
  });

  test("without the helper, the watchdog fences the job the same way", async () => {
    const was = process.env.BALSAM_SPAWN_HELPER;
    process.env.BALSAM_SPAWN_HELPER = "0";
    const said: string[] = [];
    const sup = ProcessSupervisor.start((l) => said.push(l), { fence: view });
    if (was === undefined) delete process.env.BALSAM_SPAWN_HELPER;
    else process.env.BALSAM_SPAWN_HELPER = was;
    await closing(sup, async () => {
      assert.match(said.join("\n"), /start through child_process\.spawn/);
      await assertKilledAtDeadline(sup, "watchdog", 1200);
    });
  });

  test("nothing of a job whose deadline has passed starts", async () => {
    await closing(ProcessSupervisor.start(() => undefined, { fence: view }), async (sup) => {
      deadlines.set("late", monoMs() - 1);
      const marker = join(dir, "late.ran");
      const h = sup.run({ argv: ["/bin/sh", "-c", `touch ${marker}`], cwd: dir, env: {}, outFile: join(dir, "late.out"), fenceKey: "late" });
      const o = await h.done;
      assert.equal(o.fenced, true);
      assert.equal(h.pid, undefined);
      assert.equal(existsSync(marker), false);
    });
  });
});
