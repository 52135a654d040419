import { before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { useTestContext, type TestContext } from "./context.js";
import { makeCliDb, type CliDb, type RunResult } from "./cli.js";
import { startLauncher, exitedWithin, type LauncherProc } from "./launcher.js";
import { startWeb, type WebProc } from "./web.js";
import { connect, type Balsam } from "../../libs/client/index.js";

/**
 * The set-up most launcher tests share: a CLI database on the test servers,
 * a client on it, a scratch directory for the apps' scripts, and optionally
 * `balsam web` (for Python scripts). Its fields are filled in `before` and
 * everything is closed in `after`, so a test file declares it once at the top.
 */
export interface CliFixture {
  ctx: TestContext;
  db: CliDb;
  balsam: Balsam;
  /** Scratch directory for scripts, removed after the file. */
  dir: string;
  web?: WebProc;
  /** An executable script in `dir`; the body follows the shebang line. */
  script(name: string, body: string, shebang?: string): string;
  /** Runs `balsam launcher --wf-filter WF` until it exits (it must exit 0 within 3 minutes); returns its output. */
  launch(wf: string, opts?: LaunchOptions): Promise<string>;
  /** Starts `balsam launcher --wf-filter WF` (`--wf-exact` with `exact`) and leaves it to the test. */
  start(wf: string, opts?: LaunchOptions): LauncherProc;
  /** Runs `balsam ARGS`, which must exit 0. */
  ok(args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult>;
  /** The job names `balsam ls ARGS --json` prints, sorted. */
  names(args: string[]): Promise<string[]>;
}

export interface LaunchOptions {
  mode?: "serial" | "mpi";
  /** More launcher flags. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** `--wf-exact WF` instead of `--wf-filter WF`. */
  exact?: boolean;
}

export function useCliFixture(kind: string, opts: { web?: boolean } = {}): CliFixture {
  const ctx = useTestContext(kind);
  const f = { ctx } as CliFixture;
  f.script = (name, body, shebang = "#!/bin/sh") => {
    const p = join(f.dir, name);
    writeFileSync(p, `${shebang}\n${body}\n`, { mode: 0o755 });
    return p;
  };
  f.start = (wf, { mode = "serial", args = [], env = {}, exact = false } = {}) => {
    // Two names for this host make two "nodes" an mpirun can reach.
    const nodes = mode === "mpi" ? `localhost,${hostname()}` : "node1";
    return startLauncher([exact ? "--wf-exact" : "--wf-filter", wf, "--job-mode", mode, ...args], { ...f.db.env, BALSAM_NODELIST: nodes, ...env });
  };
  f.launch = async (wf, opts = {}) => {
    const l = f.start(wf, opts);
    assert.equal(await exitedWithin(l, 180_000), 0, l.output());
    return l.output();
  };
  f.ok = async (args, env = {}) => {
    const r = await f.db.run(args, { env });
    assert.equal(r.code, 0, `balsam ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    return r;
  };
  f.names = async (args) => {
    const r = await f.ok(["ls", ...args, "--json"]);
    return (JSON.parse(r.stdout) as Array<{ name: string }>).map((j) => j.name).sort();
  };
  before(async () => {
    f.db = await makeCliDb(ctx.mongoUrl, ctx.redisUrl, ctx.dbName, ctx.prefix);
    f.balsam = await connect({ dbPath: f.db.dir });
    f.dir = mkdtempSync(join(tmpdir(), `balsam-${kind}-`));
    if (opts.web) f.web = await startWeb(f.db.env);
  });
  // Closed before the context checks that no socket is left open.
  ctx.onClose(async () => {
    await f.balsam?.close();
    await f.web?.stop();
    f.db?.cleanup();
    if (f.dir) rmSync(f.dir, { recursive: true, force: true });
  });
  return f;
}
