import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, RUNNABLE_STATES, type Balsam } from "../../libs/client/index.js";
import { masterNodes, queueName, type JobQueues } from "../../libs/queue/index.js";
import { makeCliDb, type CliDb } from "./cli.js";
import { exitedWithin, startLauncher, type LauncherProc } from "./launcher.js";
import { waitFor, type TestContext } from "./context.js";
import { coll } from "../../libs/store/collections.js";

/**
 * What the cluster pass's files share: a database on a given Redis URL, an
 * app that logs each run, launchers, and the checks every file makes —
 * every job finished once, nothing runnable left without its queue entry,
 * where a workflow's keys live.
 */

export interface HaRun {
  db: CliDb;
  balsam: Balsam;
  /** The app's name: appends the job's id to the run log, once per run. */
  app: string;
  /** How many times each job id ran. */
  runs(): Map<string, number>;
  /**
   * While on, each run of the app lasts 0.2 s more: a failover then finds the
   * run in the middle however fast the launchers have become (2,000 no-op jobs
   * can end in the 1–2 s a failover takes).
   */
  slow(on: boolean): void;
  /** `n` launchers consuming exactly `workflows`. */
  launchers(n: number, workflows: string[]): LauncherProc[];
  close(): Promise<void>;
}

/** A database on `redisUrl`; `tag` sets it apart from the file's others (its own database name and prefix). */
export async function openHaRun(ctx: TestContext, redisUrl: string, tag = ""): Promise<HaRun> {
  const db = await makeCliDb(ctx.mongoUrl, redisUrl, ctx.dbName + tag, ctx.prefix + tag);
  const balsam = await connect({ dbPath: db.dir });
  const dir = mkdtempSync(join(tmpdir(), "balsam-ha-"));
  const log = join(dir, "ran.log");
  const script = join(dir, "mark.sh");
  const slow = join(dir, "slow");
  writeFileSync(script, `#!/bin/sh\necho "$BALSAM_JOB_ID" >> ${log}\nif [ -e ${slow} ]; then sleep 0.2; fi\n`, { mode: 0o755 });
  await balsam.apps.add({ name: "mark", executable: script });
  const started: LauncherProc[] = [];
  return {
    db,
    balsam,
    app: "mark",
    runs: () => {
      const m = new Map<string, number>();
      if (!existsSync(log)) return m;
      for (const id of readFileSync(log, "utf8").split("\n").filter(Boolean)) m.set(id, (m.get(id) ?? 0) + 1);
      return m;
    },
    slow: (on) => (on ? writeFileSync(slow, "") : rmSync(slow, { force: true })),
    launchers: (n, workflows) => {
      const ls = Array.from({ length: n }, () => startLauncher(["--wf-exact", workflows.join(","), "--job-mode", "serial"], { ...db.env, BALSAM_NODELIST: "node1" }));
      started.push(...ls);
      return ls;
    },
    close: async () => {
      for (const l of started) if (l.child.exitCode === null) l.child.kill("SIGKILL");
      if (tag) await coll(balsam.store).db.dropDatabase();
      await balsam.close();
      db.cleanup();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function addJobs(balsam: Balsam, workflow: string, n: number, app: string, from = 0): Promise<string[]> {
  const ids: string[] = [];
  for (let i = from; i < from + n; i += 1000) {
    const jobs = await balsam.jobs.addMany(Array.from({ length: Math.min(1000, from + n - i) }, (_, k) => ({ name: `${workflow}-${i + k}`, workflow, application: app, nodePackingCount: 4 })));
    ids.push(...jobs.map((j) => j._id));
  }
  return ids;
}

/** The end of what launcher `i` (of a run's list) logged, for a failure's message; `what` goes beside its number. */
function saidLast(l: LauncherProc, i: number, what = ""): string {
  return `launcher ${i + 1}:${what ? ` ${what}` : ""}\n${l.output().slice(-3000)}`;
}

/** Every launcher exits 0 within `ms` (an idle launcher stops by itself), the same process that started. */
export async function allExited(ls: LauncherProc[], ms: number): Promise<void> {
  const codes = await Promise.all(ls.map((l) => exitedWithin(l, ms)));
  codes.forEach((c, i) => assert.equal(c, 0, saidLast(ls[i]!, i, String(c))));
}

/** Each of the workflow's `n` jobs is JOB_FINISHED, recorded so once; returns the jobs. */
export async function assertFinishedOnce(balsam: Balsam, workflow: string, n: number): Promise<void> {
  const docs = await balsam.jobs.filter({ workflow }).list();
  assert.equal(docs.length, n, `${workflow}: ${docs.length} jobs`);
  const bad = docs.filter((d) => d.state !== "JOB_FINISHED" || d.stateHistory.filter((h) => h.state === "JOB_FINISHED").length !== 1);
  assert.deepEqual(
    bad.slice(0, 3).map((d) => `${d.name} ${d.state} ${d.stateHistory.map((h) => h.state).join(">")}`),
    [],
    `${workflow}: ${bad.length} job(s) not finished exactly once`,
  );
}

/** Runnable jobs (READY, RESTART_READY) of a workflow whose queue entry is missing. */
export async function runnableWithoutEntry(balsam: Balsam, workflow: string): Promise<string[]> {
  const runnable = await balsam.jobs.filter({ workflow, state: [...RUNNABLE_STATES] }).list({ projection: { _id: 1, attempts: 1, chunk: 1 } });
  const missing: string[] = [];
  // A chunked job's entry is its chunk's (libs/client/add.ts).
  for (const j of runnable) if (!(await balsam.queues.has({ id: j._id, workflow, attempts: j.attempts, chunk: j.chunk }))) missing.push(j._id);
  return missing;
}

/** The ports of the master nodes holding keys of each workflow's queue, and the slots of those keys. */
export async function whereKeysLive(queues: JobQueues, workflows: string[]): Promise<Map<string, { ports: Set<number>; slots: Set<number>; keys: number }>> {
  const out = new Map(workflows.map((w) => [w, { ports: new Set<number>(), slots: new Set<number>(), keys: 0 }]));
  for (const node of masterNodes(queues.connection)) {
    let cursor = "0";
    do {
      const [next, keys] = await node.scan(cursor, "MATCH", `${queues.prefix}:*`, "COUNT", 1000);
      cursor = next;
      for (const key of keys) {
        const wf = workflows.find((w) => key.startsWith(`${queues.prefix}:${queueName(w)}:`));
        if (!wf) continue;
        const at = out.get(wf)!;
        at.ports.add(node.options.port!);
        at.slots.add(Number(await node.call("CLUSTER", "KEYSLOT", key)));
        at.keys++;
      }
    } while (cursor !== "0");
  }
  return out;
}

export interface MidRunFailover {
  /** Jobs finished when the failover began. */
  finishedBefore: number;
  /** From the kill (or the failover asked) until the new primary served. */
  failoverMs: number;
  /** From the kill until 100 more jobs had finished than when the new primary took over. */
  resumedMs: number;
  /** Jobs whose process ran more than once (delivery is at least once; each is still recorded finished once). */
  ranTwice: number;
  /**
   * Queue entries left, by BullMQ state, when every job had finished: writes
   * the old primary acknowledged after its replica was promoted are lost with
   * it, so an entry completed there can come back on the new one. Each
   * belongs to a finished job, which a launcher that takes it does not record again.
   */
  leftOver: Record<string, number>;
}

/**
 * `n` jobs, 2 launchers; once a quarter has finished, `failover()` (which
 * returns when the new primary serves). Then the same launcher processes
 * finish the run: every job finished once, nothing runnable left without an
 * entry, no entry left over.
 */
export async function failoverMidRun(run: HaRun, workflow: string, n: number, failover: () => Promise<void>): Promise<MidRunFailover> {
  await addJobs(run.balsam, workflow, n, run.app);
  const ls = run.launchers(2, [workflow]);
  const finished = () => run.balsam.jobs.filter({ workflow, state: "JOB_FINISHED" }).count();
  await waitFor(async () => (await finished()) >= n / 4, 120_000, "a quarter of the jobs to finish");
  // 8 jobs running at a time then finish 40 a second at most: the 1,500 left outlast any failover the callers wait for.
  run.slow(true);
  const finishedBefore = await finished();
  const t0 = Date.now();
  await failover();
  const failoverMs = Date.now() - t0;
  run.slow(false);
  // The same processes go on: 100 more jobs finish than had when the new primary took over —
  // more than the launchers hold (4 running each, a few written behind), so entries taken from it.
  const atTakeover = await finished();
  assert.ok(atTakeover <= n - 200, `${atTakeover} of ${n} jobs had finished when the new primary took over: the failover was not in the middle of the run`);
  await waitFor(async () => (await finished()) >= atTakeover + 100, 120_000, "100 more jobs to finish after the failover").catch((err: Error) => {
    // What the launchers said is what tells a connection that never came back from one that stopped.
    throw new Error(`${err.message}\n${ls.map((l, i) => saidLast(l, i)).join("\n")}`);
  });
  const resumedMs = Date.now() - t0;
  await allExited(ls, 240_000);
  await assertFinishedOnce(run.balsam, workflow, n);
  assert.deepEqual(await runnableWithoutEntry(run.balsam, workflow), []);
  const runs = run.runs();
  assert.equal(runs.size, n, "jobs that never ran");
  // The Sentinels may still be cutting the demoted primary's connections: this client reconnects, and a command sent
  // meanwhile fails at once (no offline queue; seen under a loaded machine). Read once it serves again.
  let counts: Record<string, number> = {};
  await waitFor(
    async () => {
      try {
        counts = await run.balsam.queues.queue(workflow).getJobCounts("waiting", "active", "delayed", "prioritized");
        return true;
      } catch (err) {
        if (/Stream isn't writeable/.test((err as Error).message)) return false;
        throw err;
      }
    },
    30_000,
    "the queue's connection to serve again, to count the entries left",
  );
  const leftOver = Object.fromEntries(Object.entries(counts).filter(([, c]) => c > 0));
  return { finishedBefore, failoverMs, resumedMs, ranTwice: [...runs.values()].filter((c) => c > 1).length, leftOver };
}
