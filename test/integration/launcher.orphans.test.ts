import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../support/context.js";
import { type LauncherProc } from "../support/launcher.js";
import { useCliFixture } from "../support/fixture.js";

/**
 * Hardening item 10: a job's processes, its own children included, end with
 * its launcher — so a job restarted after the lease lapses never shares its
 * working directory with a live earlier instance (DESIGN §6.2).
 */
const f = useCliFixture("orphan");
/** Ended with SIGTERM in `after` if a failing run left them. */
const launchers: LauncherProc[] = [];
/** Every job process the tests saw, killed in `after` if a failing run left it. */
const seen = new Set<number>();

/** Alive and not a zombie waiting for init to reap it. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

function processGroupOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
}

/**
 * Starts a child in the job's process group and one in a group of its own
 * (bash job control, as mpirun does for its ranks), writes `$$ child1 child2`
 * to `pids`, and waits.
 */
const TWO_CHILDREN = ["sleep 300 &", "a=$!", "set -m; sleep 300 & b=$!; set +m", 'echo "$$ $a $b" > pids', "wait"];

function launch(wf: string, env: NodeJS.ProcessEnv = {}): LauncherProc {
  const l = f.start(wf, { env });
  launchers.push(l);
  return l;
}

/** The pids a job wrote to `file` in its working directory, once it has written them. */
async function pidsOf(id: string, file: string, count: number): Promise<number[]> {
  let pids: number[] = [];
  await waitFor(
    async () => {
      const { workdir } = await f.balsam.jobs.get(id);
      const p = join(workdir, file);
      pids = existsSync(p) ? readFileSync(p, "utf8").trim().split(/\s+/).filter(Boolean).map(Number) : [];
      return pids.length === count;
    },
    20_000,
    `job ${id} to write ${file}`,
  );
  for (const p of pids) seen.add(p);
  return pids;
}

describe("job processes end with their launcher", () => {
  after(async () => {
    for (const l of launchers) {
      if (l.child.exitCode === null && l.child.signalCode === null) l.child.kill("SIGTERM");
      await l.exited;
    }
    for (const pid of seen) {
      try {
        if (alive(pid)) process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  });

  test("kill -9 of a launcher running 2 jobs ends their processes and children, in their process group or not; the restarts never overlap them", async () => {
    // Each run first records any instance of an earlier run still alive; the
    // first run starts a child and waits, the second finishes at once.
    await f.balsam.apps.add({
      name: "stubborn",
      executable: f.script(
        "stubborn.sh",
        [
          'if [ -f pids ]; then for p in $(cat pids); do if [ -r /proc/$p/stat ] && ! grep -q ") Z" /proc/$p/stat; then echo "$p" >> overlap; fi; done; fi',
          "n=$(( $(cat runs 2>/dev/null || echo 0) + 1 )); echo $n > runs",
          'if [ $n -gt 1 ]; then echo "DH-OUTPUT: $n"; exit 0; fi',
          ...TWO_CHILDREN,
        ].join("\n"),
        "#!/bin/bash",
      ),
    });
    const jobs = await f.balsam.jobs.addMany([0, 1].map((i) => ({ name: `orphan${i}`, workflow: "ORPH", application: "stubborn", nodePackingCount: 2 })));
    const env = { BALSAM_LEASE_TTL_MS: "2000" };
    const l1 = launch("ORPH", env);
    const perJob = await Promise.all(jobs.map((j) => pidsOf(j._id, "pids", 3)));
    const pids = perJob.flat();
    assert.ok(pids.every(alive), "both jobs and their children run");
    for (const [main, , own] of perJob) assert.notEqual(processGroupOf(own!), processGroupOf(main!), "one child has left the job's process group");

    l1.child.kill("SIGKILL");
    await l1.exited;
    await waitFor(() => pids.every((p) => !alive(p)), 10_000, `job processes ${pids.join(", ")} to end with their launcher`);

    const l2 = launch("ORPH", env);
    assert.equal(await l2.exited, 0, l2.output());
    for (const j of jobs) {
      const d = await f.balsam.jobs.get(j._id);
      assert.equal(d.state, "JOB_FINISHED", JSON.stringify(d.stateHistory));
      assert.equal(d.data.result, 2, "ran again after the lease lapsed");
      assert.ok(d.stateHistory.some((h) => h.state === "RESTART_READY" && /lease of launcher .* lapsed/.test(h.message)));
      assert.equal(existsSync(join(d.workdir, "overlap")), false, `an instance of ${d.name} was alive when the next one started`);
    }
  });

  test("a spawn helper killed outright takes its jobs' children with it, in their process group or not (the watchdog sweeps what its job table listed); the job runs again", async () => {
    await f.balsam.apps.add({
      name: "twice",
      executable: f.script("twice.sh", ["n=$(( $(cat runs 2>/dev/null || echo 0) + 1 )); echo $n > runs", 'if [ $n -gt 1 ]; then echo "DH-OUTPUT: $n"; exit 0; fi', ...TWO_CHILDREN].join("\n"), "#!/bin/bash"),
    });
    const j = await f.balsam.jobs.add({ name: "helperless", workflow: "HELPERKILL", application: "twice" });
    const l = launch("HELPERKILL");
    const pids = await pidsOf(j._id, "pids", 3);
    const helper = Number(readFileSync(`/proc/${pids[0]}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
    assert.match(readFileSync(`/proc/${helper}/comm`, "utf8"), /balsam-spawn/, "the job's parent is the spawn helper");
    process.kill(helper, "SIGKILL");
    await waitFor(() => pids.every((p) => !alive(p)), 10_000, `job processes ${pids.join(", ")} to end with their helper`);
    assert.equal(await l.exited, 0, l.output());
    const d = await f.balsam.jobs.get(j._id);
    assert.equal(d.state, "JOB_FINISHED", JSON.stringify(d.stateHistory));
    assert.equal(d.data.result, 2, "ran again after its helper was lost");
  });

  test("killjob ends the job's children too, in its process group or not", async () => {
    await f.balsam.apps.add({ name: "parent", executable: f.script("parent.sh", TWO_CHILDREN.join("\n"), "#!/bin/bash") });
    const j = await f.balsam.jobs.add({ name: "victim", workflow: "KILLKIDS", application: "parent" });
    const l = launch("KILLKIDS", { BALSAM_KILL_GRACE_MS: "2000" });
    const pids = await pidsOf(j._id, "pids", 3);
    await f.balsam.jobs.kill(j._id);
    assert.equal(await l.exited, 0, l.output());
    assert.equal((await f.balsam.jobs.get(j._id)).state, "USER_KILLED");
    await waitFor(() => pids.every((p) => !alive(p)), 5_000, `job processes ${pids.join(", ")} to end`);
  });

  test("a job's background processes end when its main process exits", async () => {
    await f.balsam.apps.add({ name: "leaver", executable: f.script("leaver.sh", 'sleep 300 &\necho "$!" > child\necho "DH-OUTPUT: 1"') });
    const j = await f.balsam.jobs.add({ name: "leaver", workflow: "LEAVE", application: "leaver" });
    const l = launch("LEAVE");
    assert.equal(await l.exited, 0, l.output());
    assert.equal((await f.balsam.jobs.get(j._id)).state, "JOB_FINISHED");
    const [child] = await pidsOf(j._id, "child", 1);
    await waitFor(() => !alive(child!), 5_000, `background process ${child} to end`);
  });
});
