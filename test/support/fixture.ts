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
 * The set-up most CLI and launcher tests share: a CLI database, a client on
 * it, a scratch directory for the apps' scripts, and optionally `balsam web`
 * (for Python scripts). Its fields are filled in the context's set-up and
 * everything is closed in `after`, so a test file declares it once at the
 * top; more set-up goes through `setup`, which runs after the fixture's.
 */
export interface CliFixture {
  ctx: TestContext;
  db: CliDb;
  balsam: Balsam;
  /** Scratch directory for scripts (and a file's own servers' data), removed after the file. */
  dir: string;
  web?: WebProc;
  /** Set-up that runs after the fixture's (`ctx.setup`): a top-level `before` would race it. */
  setup(fn: () => Promise<void> | void): void;
  /** An executable script in `dir`; the body follows the shebang line. */
  script(name: string, body: string, shebang?: string): string;
  /** Runs `balsam launcher --wf-filter WF` until it exits (it must exit 0 within `withinMs`); returns its output. */
  launch(wf: string, opts?: LaunchOptions & { withinMs?: number }): Promise<string>;
  /**
   * Starts `balsam launcher --wf-filter WF` (`--wf-exact` with `exact`) and
   * leaves it to the test; one still running when the file ends is killed.
   */
  start(wf: string, opts?: LaunchOptions): LauncherProc;
  /** Runs `balsam ARGS`, which must exit 0. */
  ok(args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult>;
  /** The job names `balsam ls ARGS --json` prints, sorted. */
  names(args: string[]): Promise<string[]>;
  /** Another database directory, removed after the file; by default on this file's database and prefix on the same servers. */
  anotherDb(at?: Partial<DbPlace>): Promise<CliDb>;
}

export interface LaunchOptions {
  mode?: "serial" | "mpi";
  /** More launcher flags. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** `--wf-exact WF` instead of `--wf-filter WF`. */
  exact?: boolean;
}

/** Where a database directory points: `balsam init --mongo-url --redis-url --db-name --queue-prefix`. */
export interface DbPlace {
  mongoUrl: string;
  redisUrl: string;
  dbName: string;
  prefix: string;
}

/** Servers a file runs for itself (a Redis to restart, a MongoDB to freeze); a URL left out is the test servers'. */
export interface OwnServers {
  mongoUrl?: string;
  redisUrl?: string;
  /** Called after the client and `balsam web` have closed. */
  stop(): Promise<void> | void;
}

export interface CliFixtureOptions {
  web?: boolean;
  /** Starts the file's own servers for the database, given the scratch directory for their data. */
  servers?: (dir: string) => Promise<OwnServers>;
}

export function useCliFixture(kind: string, opts: CliFixtureOptions = {}): CliFixture {
  const ctx = useTestContext(kind);
  const f = { ctx, setup: ctx.setup } as CliFixture;
  let own: OwnServers | undefined;
  const place = (): DbPlace => ({ mongoUrl: own?.mongoUrl ?? ctx.mongoUrl, redisUrl: own?.redisUrl ?? ctx.redisUrl, dbName: ctx.dbName, prefix: ctx.prefix });
  const dbs: CliDb[] = [];
  const launchers: LauncherProc[] = [];
  f.anotherDb = async (at = {}) => {
    const p = { ...place(), ...at };
    const db = await makeCliDb(p.mongoUrl, p.redisUrl, p.dbName, p.prefix);
    dbs.push(db);
    return db;
  };
  f.script = (name, body, shebang = "#!/bin/sh") => {
    const p = join(f.dir, name);
    writeFileSync(p, `${shebang}\n${body}\n`, { mode: 0o755 });
    return p;
  };
  f.start = (wf, { mode = "serial", args = [], env = {}, exact = false } = {}) => {
    // Two names for this host make two "nodes" an mpirun can reach.
    const nodes = mode === "mpi" ? `localhost,${hostname()}` : "node1";
    const l = startLauncher([exact ? "--wf-exact" : "--wf-filter", wf, "--job-mode", mode, ...args], { ...f.db.env, BALSAM_NODELIST: nodes, ...env });
    launchers.push(l);
    return l;
  };
  f.launch = async (wf, { withinMs = 180_000, ...opts } = {}) => {
    const l = f.start(wf, opts);
    assert.equal(await exitedWithin(l, withinMs), 0, l.output());
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
  // After the context's own set-up: it fills ctx.mongoUrl and ctx.redisUrl.
  ctx.setup(async () => {
    f.dir = mkdtempSync(join(tmpdir(), `balsam-${kind}-`));
    if (opts.servers) own = await opts.servers(f.dir);
    f.db = await f.anotherDb();
    f.balsam = await connect({ dbPath: f.db.dir });
    if (opts.web) f.web = await startWeb(f.db.env);
  });
  // Closed before the context checks that no socket is left open.
  ctx.onClose(async () => {
    for (const l of launchers) {
      if (l.child.exitCode !== null || l.child.signalCode !== null) continue;
      // A frozen (SIGSTOPped) launcher too.
      l.child.kill("SIGCONT");
      l.child.kill("SIGKILL");
      await l.exited;
    }
    await f.balsam?.close();
    await f.web?.stop();
    await own?.stop();
    for (const db of dbs) db.cleanup();
    if (f.dir) rmSync(f.dir, { recursive: true, force: true });
  });
  return f;
}
