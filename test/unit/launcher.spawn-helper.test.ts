import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { waitFor, alive } from "../support/context.js";
import { ProcessSupervisor } from "../../services/launcher/runner.js";
import { HelperSpawner, InProcessSpawner, helperPath, type SpawnReply, type Spawner, type StartRequest } from "../../services/launcher/spawner.js";

/**
 * native/balsam-spawn.c, driven through HelperSpawner as the launcher drives
 * it, beside the in-process spawner: both must start, report and fail alike.
 * `npm run build` compiles the helper (provisioning installs a C compiler), so
 * a missing helper fails here rather than passing on the fallback alone.
 */
let dir: string;
const logs: string[] = [];

/** The running helper's pid (the spawner keeps its child private). */
function pidOfHelper(h: HelperSpawner): number {
  const pid = (h as unknown as { child?: { pid?: number } }).child?.pid;
  assert.ok(pid, "a helper runs");
  return pid;
}

/** `bytes`: the output file's size as the exit reply told it (the helper's), apart from `end`, which both spawners tell alike. */
function run(s: Spawner, req: Partial<StartRequest> & { argv: string[] }): Promise<{ started?: number; end: SpawnReply; bytes?: number }> {
  return new Promise((resolve) => {
    let started: number | undefined;
    s.run({ cwd: dir, env: {}, outFile: join(dir, "out.txt"), mkdir: false, ...req }, (m) => {
      if (m.t === "started") started = m.pid;
      else if (m.t === "exit") {
        const { outputBytes: bytes, ...end } = m;
        resolve({ started, end, bytes });
      } else resolve({ started, end: m });
    });
  });
}

describe("the spawn helper", () => {
  const path = helperPath();
  let helper: HelperSpawner;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "balsam-spawn-"));
    assert.ok(path, "dist/native/balsam-spawn is built by `npm run build`");
    helper = new HelperSpawner(path, (l) => logs.push(l));
  });
  after(async () => {
    await helper.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const both = (): Array<[string, Spawner]> => [
    ["helper", helper],
    ["in-process", new InProcessSpawner(Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined)), [])],
  ];

  test("a job gets its argv byte for byte, its environment over the launcher's, a made cwd, and its output appended", async () => {
    for (const [how, s] of both()) {
      const cwd = join(dir, how, "a", "b");
      const out = join(dir, `${how}.out`);
      writeFileSync(out, "before\n");
      const odd = "line one\nline two — ünïcode 'quoted' \"double\" $HOME *";
      const { started, end, bytes } = await run(s, {
        argv: ["/bin/sh", "-c", 'printf "%s|%s|%s|%s\\n" "$1" "$JOBVAR" "$(pwd)" "$HOME"; echo err >&2; exit 3', "sh", odd],
        cwd,
        env: { JOBVAR: "x=y", HOME: "/job/home" },
        outFile: out,
        mkdir: true,
      });
      assert.ok(started && started > 0, how);
      assert.deepEqual(end, { t: "exit", code: 3, signal: null }, how);
      assert.equal(readFileSync(out, "utf8"), `before\n${odd}|x=y|${cwd}|/job/home\nerr\n`, how);
      // The helper tells the output file's size with the exit (the launcher then reads nothing of a silent job's).
      assert.equal(bytes, how === "helper" ? Buffer.byteLength(readFileSync(out)) : undefined, how);
    }
  });

  test("each job leads its own session and process group, with no stdin", async () => {
    const out = join(dir, "session.out");
    const { started, end } = await run(helper, { argv: ["/bin/sh", "-c", "cut -d' ' -f5,6 /proc/$$/stat; cat; echo eof"], outFile: out });
    assert.equal(end.t, "exit");
    // pgrp and session are the job's own pid; stdin is /dev/null, so cat ends at once.
    assert.equal(readFileSync(out, "utf8"), `${started} ${started}\neof\n`);
  });

  test("a job killed by a signal is reported by the signal's name", async () => {
    for (const [how, s] of both()) {
      const { end } = await run(s, { argv: ["/bin/sh", "-c", "kill -SEGV $$"] });
      assert.deepEqual(end, { t: "exit", code: null, signal: "SIGSEGV" }, how);
    }
  });

  test("what cannot start says why in one line, and nothing runs", async () => {
    const file = join(dir, "plainfile");
    writeFileSync(file, "not a directory\n");
    const noexec = join(dir, "noexec.sh");
    writeFileSync(noexec, "#!/bin/sh\n", { mode: 0o644 });
    const cases: Array<[Partial<StartRequest> & { argv: string[] }, RegExp]> = [
      [{ argv: ["/nonexistent/prog"] }, /^\/nonexistent\/prog: .*(No such file|ENOENT)/],
      [{ argv: [noexec] }, /noexec\.sh: .*(Permission denied|EACCES)/],
      [{ argv: ["/bin/true"], cwd: join(file, "sub"), mkdir: true }, /^cannot make the working directory: .*(Not a directory|ENOTDIR)/],
      // The working directory's own name taken by a file (the helper's first mkdir meets EEXIST).
      [{ argv: ["/bin/true"], cwd: file, mkdir: true }, /^cannot make the working directory: .*(Not a directory|ENOTDIR)/],
      [{ argv: ["/bin/true"], outFile: join(dir, "missing", "out.txt") }, /^cannot open the output file: .*(No such file|ENOENT)/],
    ];
    for (const [req, why] of cases) {
      const { started, end } = await run(helper, req);
      assert.equal(started, undefined, JSON.stringify(req));
      assert.equal(end.t, "failed");
      assert.match((end as { message: string }).message, why);
    }
    // The helper is still there and well, and a working directory that exists already (a restarted job's) is used as it is.
    const silent = await run(helper, { argv: ["/bin/true"], outFile: join(dir, "silent.out") });
    assert.deepEqual([silent.end, silent.bytes], [{ t: "exit", code: 0, signal: null }, 0], "a silent job's output: 0 bytes, told");
    assert.deepEqual((await run(helper, { argv: ["/bin/sh", "-c", "pwd"], cwd: dir, mkdir: true, outFile: join(dir, "again.out") })).end, { t: "exit", code: 0, signal: null });
    assert.equal(readFileSync(join(dir, "again.out"), "utf8"), `${dir}\n`);
  });

  test("many jobs at once are each told their own end", async () => {
    const ends = await Promise.all(Array.from({ length: 200 }, (_, i) => run(helper, { argv: ["/bin/sh", "-c", `exit ${i % 7}`] })));
    assert.deepEqual(
      ends.map((e) => (e.end as { code: number }).code),
      Array.from({ length: 200 }, (_, i) => i % 7),
    );
  });

  test("when its launcher closes it, the jobs still running are killed with their process groups", async () => {
    const h = new HelperSpawner(path!, (l) => logs.push(l));
    const pids = join(dir, "pids");
    const ended = run(h, { argv: ["/bin/sh", "-c", `sleep 300 & echo $! > ${pids}; exec sleep 300`] });
    await waitFor(() => existsSync(pids) && readFileSync(pids, "utf8").endsWith("\n"), 10_000, "the job to start");
    const bg = Number(readFileSync(pids, "utf8"));
    assert.ok(alive(bg));
    await h.close();
    await waitFor(() => !alive(bg), 10_000, "the job's background process to be killed");
    // Its end is still told, as a kill, not as a loss.
    assert.deepEqual((await ended).end, { t: "exit", code: null, signal: "SIGKILL" });
  });

  test("a helper that dies loses its running jobs (each told why) and is replaced; after three deaths jobs start from the launcher", async () => {
    const said: string[] = [];
    const sup = ProcessSupervisor.start((l) => said.push(l));
    const out = join(dir, "deaths.out");
    const parentOf = async () => {
      writeFileSync(out, "");
      const h = sup.run({ argv: ["/bin/sh", "-c", "echo $PPID"], cwd: dir, env: {}, outFile: out });
      assert.equal((await h.done).exitCode, 0);
      return Number(readFileSync(out, "utf8"));
    };
    try {
      assert.notEqual(await parentOf(), process.pid, "started by the helper");
      for (let death = 1; death <= 3; death++) {
        // Two bystanders die with the helper too: one death, three jobs lost.
        const bystanders = [1, 2].map(() => sup.run({ argv: ["/bin/sh", "-c", "exec sleep 60"], cwd: dir, env: {}, outFile: out }));
        await waitFor(() => bystanders.every((b) => b.pid !== undefined), 10_000, "the bystanders to start");
        const killer = sup.run({ argv: ["/bin/sh", "-c", "kill -9 $PPID; exec sleep 60"], cwd: dir, env: {}, outFile: out });
        for (const h of [killer, ...bystanders]) assert.match((await h.done).lost ?? "", /^its process was lost: \S+balsam-spawn exited \(SIGKILL\)$/);
        if (death < 3) assert.notEqual(await parentOf(), process.pid, `a new helper after death ${death}`);
      }
      assert.equal(await parentOf(), process.pid, "started from the launcher itself");
      assert.ok(said.some((l) => /the spawn helper died 3 times: job processes now start through child_process\.spawn/.test(l)), said.join("\n"));
    } finally {
      await sup.close();
    }
  });

  test("with a job table, the helper lists each live job's pid in it and blanks the line when the job ends; a new helper gets a new table, the dead one's is told for a sweep", async () => {
    const told: string[] = [];
    const tables = mkdtempSync(join(tmpdir(), "balsam-tables-"));
    const h = new HelperSpawner(path!, () => undefined, 0, { dir: tables, tell: (l) => told.push(l) });
    try {
      assert.equal(told.length, 1, "the table is told before any job starts");
      const table = /^t (.+)\n$/.exec(told[0]!)?.[1];
      assert.ok(table && existsSync(table), told[0]);
      const lines = () => readFileSync(table, "utf8").split("\n").map((l) => l.trim()).filter(Boolean);
      const ends: Array<Promise<SpawnReply>> = [];
      const pids: number[] = [];
      const listed: boolean[] = [];
      for (let i = 0; i < 2; i++) {
        ends.push(
          new Promise((resolve) =>
            h.run({ argv: ["/bin/sh", "-c", "exec sleep 60"], cwd: tables, env: {}, outFile: "/dev/null", mkdir: false }, (m) => {
              if (m.t !== "started") return resolve(m);
              pids.push(m.pid);
              listed.push(Boolean(m.listed));
            }),
          ),
        );
      }
      await waitFor(() => pids.length === 2, 10_000, "both jobs to start");
      assert.deepEqual(listed, [true, true], "started replies say the job is listed");
      assert.deepEqual(lines().sort(), pids.map(String).sort(), "both running jobs are listed");
      for (const pid of pids) process.kill(pid, "SIGKILL");
      await Promise.all(ends);
      assert.deepEqual(lines(), [], "ended jobs leave blank lines");
      assert.ok(readFileSync(table, "utf8").length >= 22, "the lines stay, blanked, for the next jobs");
      // A helper killed outright: its table is told for the watchdog to sweep, and the next job starts a new helper with a new table.
      process.kill(pidOfHelper(h), "SIGKILL");
      await waitFor(() => told.length === 2, 5_000, "the dead helper's table to be told");
      assert.equal(told[1], `T ${table}\n`);
      const { end } = await run(h, { argv: ["/bin/true"] });
      assert.deepEqual(end, { t: "exit", code: 0, signal: null });
      assert.match(told[2] ?? "", /^t .+-\d+\n$/);
      assert.notEqual(told[2], told[0]);
    } finally {
      await h.close();
      assert.deepEqual(readdirSync(tables).filter((n) => n.startsWith("balsam-jobs-") && n !== basename(/^T (.+)\n$/.exec(told[1] ?? "")?.[1] ?? "")), [], "a helper closed removes its table");
      rmSync(tables, { recursive: true, force: true });
    }
  });

  test("the helper tells what its ended jobs' processes used (its reaped children's CPU)", async () => {
    const h = new HelperSpawner(path!, () => undefined, 0);
    try {
      assert.equal(h.jobsCpuMs(), 0, "nothing ended yet");
      // ~0.3–1 s of shell arithmetic: well over the 10 ms a clock tick counts.
      const { end } = await run(h, { argv: ["/bin/sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"] });
      assert.deepEqual(end, { t: "exit", code: 0, signal: null });
      assert.ok(h.jobsCpuMs() >= 100, `jobs' CPU ${h.jobsCpuMs()} ms`);
      assert.ok(h.cpuMs() < h.jobsCpuMs(), "the helper's own CPU is counted apart");
    } finally {
      await h.close();
    }
    assert.ok(h.jobsCpuMs() >= 100, "still told once the helper is closed");
  });

  test("a helper whose stdin closes with a job running kills the job's group and keeps its line; the table is told for the watchdog to sweep the rest of its session", async () => {
    // A launcher killed -9 closes the helper's stdin before its parent-death signal lands: the helper may reap the
    // job in between, and the watchdog must still find the job (and a child in a group of its own) in the table.
    const told: string[] = [];
    const tables = mkdtempSync(join(tmpdir(), "balsam-tables-"));
    const h = new HelperSpawner(path!, () => undefined, 0, { dir: tables, tell: (l) => told.push(l) });
    try {
      const table = /^t (.+)\n$/.exec(told[0]!)![1]!;
      let pid = 0;
      const end = new Promise<SpawnReply>((resolve) =>
        h.run({ argv: ["/bin/sh", "-c", "exec sleep 60"], cwd: tables, env: {}, outFile: "/dev/null", mkdir: false }, (m) => {
          if (m.t === "started") pid = m.pid;
          else resolve(m);
        }),
      );
      await waitFor(() => pid > 0, 10_000, "the job to start");
      await h.close();
      assert.deepEqual(await end, { t: "exit", code: null, signal: "SIGKILL", outputBytes: 0 }, "the helper killed the job's group as its stdin closed");
      assert.deepEqual(readFileSync(table, "utf8").split("\n").map((l) => l.trim()).filter(Boolean), [String(pid)], "the reaped job's line stays");
      assert.deepEqual(told.slice(1), [`T ${table}\n`], "the table is told for a sweep, not removed");
    } finally {
      rmSync(tables, { recursive: true, force: true });
    }
  });
});
