import assert from "node:assert/strict";
import { waitFor } from "./context.js";
import { useCliFixture, type CliFixture } from "./fixture.js";
import type { LauncherProc } from "./launcher.js";
import type { ServerHandle } from "../../services/dbserver/servers.js";

/**
 * What the restart tests share (DESIGN §6.1: restarting a server mid-run
 * loses no job): the CLI fixture on a server of the file's own, so that
 * restarting it disturbs no other file, and an app `slowish` that sleeps,
 * then reports its argument as its result.
 */
export interface RestartRun<H extends ServerHandle> {
  f: CliFixture;
  /** The server as it runs now (a restart replaces it). */
  server(): H;
  /** Stops the server, calls `between` (to wipe its data, say), and starts it again on the same port and data directory. */
  restart(between?: () => void): Promise<void>;
  /**
   * Adds `n` slowish jobs to `wf` (named `${prefix}${i}`, argument `i`),
   * starts a launcher, restarts the server once `finishedFirst` of them
   * have finished, and returns the launcher once it has exited 0.
   */
  runThroughRestart(wf: string, o: { n: number; prefix: string; finishedFirst: number; waitingFor: string; env?: NodeJS.ProcessEnv; between?: () => void }): Promise<LauncherProc>;
  /** Every job of `wf` (`n` of them) finished once, with its argument as its result. */
  assertFinishedOnce(wf: string, n: number): Promise<void>;
}

/**
 * `start(dir, port)` starts the server with its data under `dir` (on `port`
 * when given: a restart); `url` names which of the database's servers it is.
 */
export function useRestartRun<H extends ServerHandle>(kind: string, url: "mongoUrl" | "redisUrl", start: (dir: string, port?: number) => Promise<H>, sleepSeconds: number): RestartRun<H> {
  let server: H;
  const f = useCliFixture(kind, {
    servers: async (dir) => {
      server = await start(dir);
      return { [url]: server.url, stop: () => server.stop() };
    },
  });
  f.setup(async () => {
    await f.balsam.apps.add({ name: "slowish", executable: f.script("slowish.sh", `sleep ${sleepSeconds}\necho "DH-OUTPUT: $1"`) });
  });
  const restart = async (between?: () => void) => {
    const port = server.port;
    await server.stop();
    between?.();
    server = await start(f.dir, port);
  };
  return {
    f,
    server: () => server,
    restart,
    async runThroughRestart(wf, o) {
      await f.balsam.jobs.addMany(Array.from({ length: o.n }, (_, i) => ({ name: `${o.prefix}${i}`, workflow: wf, application: "slowish", args: String(i), nodePackingCount: 4 })));
      const l = f.start(wf, { env: o.env });
      await waitFor(async () => (await f.balsam.jobs.filter({ workflow: wf, state: "JOB_FINISHED" }).count()) >= o.finishedFirst, 60_000, o.waitingFor);
      await restart(o.between);
      assert.equal(await l.exited, 0, l.output());
      return l;
    },
    async assertFinishedOnce(wf, n) {
      const jobs = await f.balsam.jobs.filter({ workflow: wf }).list();
      assert.equal(jobs.length, n);
      for (const j of jobs) {
        assert.equal(j.state, "JOB_FINISHED", `${j.name}: ${JSON.stringify(j.stateHistory)}`);
        assert.equal(j.stateHistory.filter((h) => h.state === "JOB_FINISHED").length, 1);
        assert.equal(j.data.result, Number(j.args));
      }
    },
  };
}
