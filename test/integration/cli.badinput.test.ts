import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runBalsam } from "../support/cli.js";
import { useCliFixture } from "../support/fixture.js";
import { JobsApi } from "../../libs/client/jobs.js";
import { createApp } from "../../libs/store/index.js";
import { freePort, startRedis, type ServerHandle } from "../../services/dbserver/servers.js";
import { coll } from "../../libs/store/collections.js";

/**
 * DESIGN invariant 5: bad input gets one clear line, the right exit code
 * (2 usage, 1 runtime), and changes nothing in the database.
 */
const f = useCliFixture("cli");
const { ctx } = f;
/** Database directories whose servers are not there. */
const dirs = { mongoDown: "", redisDown: "", notADb: "", wrongPassword: "", noPassword: "", initCwd: "" };
/** A redis-server of this file's own that demands a password. */
let locked: ServerHandle | undefined;

const P = "abcdef01-0000-4000-8000-000000000001"; // parent of C
const C = "abcdef02-0000-4000-8000-000000000002";
const K = "0f0f0f0f-0000-4000-8000-000000000003"; // killed
const R = "0e0e0e0e-0000-4000-8000-000000000004"; // running under a live lease

f.setup(async () => {
  const jobs = new JobsApi(ctx.store, ctx.queues);
  await createApp(ctx.store, { name: "AMBS", executable: "/bin/true" });
  await jobs.addMany([
    { _id: P, name: "task1", workflow: "TEST", application: "AMBS" },
    { _id: C, name: "task2", workflow: "TEST", application: "AMBS" },
    { _id: K, name: "killed", workflow: "TEST", application: "AMBS" },
    { _id: R, name: "running", workflow: "TEST", application: "AMBS" },
  ]);
  await jobs.addDependency(P, C);
  await jobs.kill(K);
  // As a launcher leaves it while the job's process runs: RUNNING under a lease that has not lapsed.
  await coll(ctx.store).jobs.updateOne({ _id: R }, { $set: { state: "RUNNING", lock: { owner: "test-launcher", until: new Date(Date.now() + 3_600_000) } } });

  const home = { BALSAM_HOME: f.db.env.BALSAM_HOME };
  const init = async (name: string, mongoUrl: string, redisUrl: string) => {
    const dir = join(f.dir, name);
    const r = await runBalsam(["init", dir, "--mongo-url", mongoUrl, "--redis-url", redisUrl, "--db-name", ctx.dbName, "--queue-prefix", ctx.prefix], { env: home });
    assert.equal(r.code, 0, r.stderr);
    return dir;
  };
  dirs.mongoDown = await init("mongo-down", `mongodb://127.0.0.1:${await freePort()}`, ctx.redisUrl);
  // Same database name as the working directory: MongoDB answers, so "nothing changed" is checked for real.
  dirs.redisDown = await init("redis-down", ctx.mongoUrl, `redis://127.0.0.1:${await freePort()}`);
  dirs.notADb = f.dir;
  locked = await startRedis({ dir: join(f.dir, "locked-redis"), appendOnly: false, password: "the-right-one" });
  ctx.onClose(() => locked?.stop());
  dirs.wrongPassword = await init("wrong-password", ctx.mongoUrl, locked.url.replace("the-right-one", "a-wrong-one"));
  dirs.noPassword = await init("no-password", ctx.mongoUrl, locked.url.replace(":the-right-one@", ""));
  dirs.initCwd = join(f.dir, "init-cwd");
  mkdirSync(dirs.initCwd);
  writeFileSync(join(f.dir, "a-file"), "");
});

interface Case {
  name: string;
  args: string[];
  code: 1 | 2;
  message: RegExp;
  env?: () => NodeJS.ProcessEnv;
  cwd?: () => string;
  /** What else must not have changed, outside the database. */
  unchanged?: () => void;
}

/** `init` cases run in an empty directory, which must stay empty. */
const initCwdEmpty = () => assert.deepEqual(readdirSync(dirs.initCwd), []);
const LAUNCH = ["launcher", "--wf-filter", "NOJOBS", "--job-mode", "serial"];

const ADD = ["job", "--yes", "--name", "x", "--application", "AMBS", "--workflow", "TEST"];

const CASES: Case[] = [
  { name: "unknown app", args: ["job", "--yes", "--name", "x", "--application", "NOPE", "--workflow", "TEST"], code: 1, message: /^balsam: no app named 'NOPE' \(`balsam ls apps` lists them/ },
  { name: "mkchild with an unknown app", args: ["mkchild", "--parent", P, "--name", "x", "--application", "NOPE"], code: 1, message: /no app named 'NOPE'/ },
  { name: "unknown id", args: ["dep", "ffffffff", C], code: 1, message: /^balsam: no job whose id contains 'ffffffff' \(`balsam ls` shows job ids\)$/ },
  { name: "unknown id in killjob", args: ["killjob", "--id", "ffff"], code: 1, message: /no job whose id contains 'ffff'/ },
  { name: "unknown parent for mkchild", args: ["mkchild", "--parent", "ffff", "--name", "x", "--application", "AMBS"], code: 1, message: /no job whose id contains 'ffff'/ },
  { name: "ambiguous id", args: ["killjob", "--id", "abcdef0"], code: 1, message: new RegExp(`^balsam: id 'abcdef0' matches 2 jobs: (${P}|${C}), (${P}|${C}) \\(give more characters of the id\\)$`) },
  { name: "ambiguous id in modify", args: ["modify", "abcdef", "num_nodes", "2"], code: 1, message: /id 'abcdef' matches 2 jobs/ },
  { name: "dependency cycle", args: ["dep", C, P], code: 1, message: new RegExp(`^balsam: adding ${C} → ${P} would make a cycle`) },
  { name: "duplicate dependency", args: ["dep", P.slice(0, 8), C.slice(0, 8)], code: 1, message: new RegExp(`${C} already depends on ${P}`) },
  { name: "self dependency", args: ["dep", P, P], code: 1, message: /a job cannot depend on itself/ },
  { name: "--num-nodes abc", args: [...ADD, "--num-nodes", "abc"], code: 2, message: /^balsam: --num-nodes must be a whole number, not 'abc'$/ },
  { name: "--num-nodes 0", args: [...ADD, "--num-nodes", "0"], code: 2, message: /^balsam: --num-nodes must be ≥ 1, not 0$/ },
  { name: "--ranks-per-node -1", args: [...ADD, "--ranks-per-node", "-1"], code: 2, message: /--ranks-per-node must be ≥ 1, not -1/ },
  { name: "--wall-time-minutes 1.5", args: [...ADD, "--wall-time-minutes", "1.5"], code: 2, message: /--wall-time-minutes must be a whole number/ },
  { name: "--cpu-affinity other", args: [...ADD, "--cpu-affinity", "other"], code: 2, message: /Allowed choices are none, depth/ },
  { name: "--env without =", args: [...ADD, "--env", "NOEQ"], code: 2, message: /--env: environment entry 'NOEQ' must look like VAR=VALUE/ },
  { name: "job without --name", args: ["job", "--application", "AMBS", "--workflow", "TEST"], code: 2, message: /required option '--name <name>' not specified/ },
  { name: "unknown option", args: [...ADD, "--bogus"], code: 2, message: /unknown option '--bogus'/ },
  { name: "make_dummies abc", args: ["make_dummies", "abc"], code: 2, message: /num must be a whole number/ },
  { name: "modify num_nodes 0", args: ["modify", P, "num_nodes", "0"], code: 2, message: /num_nodes must be a whole number ≥ 1, not 0/ },
  { name: "modify bool not a bool", args: ["modify", P, "auto_timeout_retry", "maybe"], code: 2, message: /auto_timeout_retry must be true or false, not 'maybe'/ },
  { name: "modify unknown field", args: ["modify", P, "bogus", "1"], code: 2, message: /^balsam: unknown job field 'bogus' \(fields you can modify: name, application, args,.*num_nodes/ },
  { name: "modify a read-only field", args: ["modify", P, "workflow", "X"], code: 2, message: /the job field workflow cannot be modified/ },
  { name: "modify unknown app field", args: ["modify", "AMBS", "bogus", "1", "--type", "apps"], code: 2, message: /unknown app field 'bogus' \(fields you can modify: name, executable/ },
  { name: "modify to an unknown app", args: ["modify", P, "application", "NOPE"], code: 1, message: /no app named 'NOPE'/ },
  { name: "modify a value starting with a dash", args: ["modify", P, "args", "--x 1"], code: 2, message: /unknown option '--x 1' \(a VALUE starting with '-' goes after --/ },
  { name: "modify to a disallowed state", args: ["modify", P, "state", "JOB_FINISHED"], code: 1, message: /^balsam: cannot move a job from READY to JOB_FINISHED \(from READY a job may go to: .*USER_KILLED\)$/ },
  { name: "modify to an unknown state", args: ["modify", P, "state", "DONE"], code: 2, message: /^balsam: unknown state 'DONE' \(states: CREATED, /},
  { name: "killjob of a killed job", args: ["killjob", "--id", K], code: 1, message: /is already USER_KILLED/ },
  { name: "unknown ls field", args: ["ls"], env: () => ({ BALSAM_LS_FIELDS: "num_nodes:bogus" }), code: 2, message: /^balsam: unknown field 'bogus' in BALSAM_LS_FIELDS \(valid fields: job_id, .*num_nodes/ },
  { name: "malformed ls fields", args: ["ls"], env: () => ({ BALSAM_LS_FIELDS: "num_nodes::args" }), code: 2, message: /has an empty field name/ },
  { name: "bad BALSAM_LS_LIMIT", args: ["ls"], env: () => ({ BALSAM_LS_LIMIT: "lots" }), code: 2, message: /BALSAM_LS_LIMIT must be a whole number/ },
  { name: "ls unknown state", args: ["ls", "--state", "DONE"], code: 2, message: /unknown state 'DONE'/ },
  { name: "ls two views", args: ["ls", "--tree", "--history"], code: 2, message: /at most one of --by-states, --history, --tree/ },
  { name: "ls apps by state", args: ["ls", "apps", "--state", "READY"], code: 2, message: /--wf, --state and --tag select jobs, not apps/ },
  { name: "ls unknown objects", args: ["ls", "things"], code: 2, message: /'things' is not something to list or remove: use jobs, apps, wf, queues/ },
  { name: "rm jobs with no selector", args: ["rm", "jobs", "--force"], code: 2, message: /^balsam: rm jobs needs a selector: --name, --id, --state, --tag or --all/ },
  { name: "rm jobs with only --wf", args: ["rm", "jobs", "--wf", "TEST", "--force"], code: 2, message: /needs a selector/ },
  { name: "rm apps with no selector", args: ["rm", "apps", "--force"], code: 2, message: /rm apps needs a selector/ },
  { name: "rm unknown state", args: ["rm", "jobs", "--state", "DONE", "--force"], code: 2, message: /unknown state 'DONE'/ },
  { name: "rm off a terminal without --force", args: ["rm", "jobs", "--name", "task"], code: 2, message: /rm asks before deleting 2 job\(s\) \(add --force/ },
  { name: "bad workflow name", args: ["job", "--yes", "--name", "x", "--application", "AMBS", "--workflow", "bad:name"], code: 2, message: /^balsam: workflow name 'bad:name' cannot be used as a queue name \(use 1-100 letters/ },
  { name: "workflow '..' would escape the data directory", args: ["job", "--yes", "--name", "x", "--application", "AMBS", "--workflow", ".."], code: 2, message: /^balsam: workflow name '\.\.' is reserved/ },
  { name: "workflow '.'", args: ["make_dummies", "2", "--wf", "."], code: 2, message: /^balsam: workflow name '\.' is reserved/ },
  { name: "workflow 'servers' is where the database's servers live", args: ["job", "--yes", "--name", "x", "--application", "AMBS", "--workflow", "servers"], code: 2, message: /^balsam: workflow name 'servers' is reserved/ },
  { name: "bad workflow name in mkchild", args: ["mkchild", "--parent", P, "--workflow", "a b", "--name", "x", "--application", "AMBS"], code: 2, message: /workflow name 'a b' cannot be used/ },
  { name: "bad workflow name in make_dummies", args: ["make_dummies", "3", "--wf", "x{y}"], code: 2, message: /workflow name 'x\{y\}' cannot be used/ },
  { name: "bad workflow name in ls", args: ["ls", "--wf", "a:b"], code: 2, message: /workflow name 'a:b' cannot be used/ },
  { name: "duplicate app", args: ["app", "--name", "AMBS", "--executable", "x"], code: 1, message: /^balsam: an app named 'AMBS' already exists/ },
  { name: "mkchild without a parent", args: ["mkchild", "--name", "x", "--application", "AMBS"], code: 2, message: /no parent job \(give --parent ID/ },
  { name: "missing BALSAM_DB_PATH", args: ADD, env: () => ({ BALSAM_DB_PATH: "" }), code: 1, message: /^balsam: BALSAM_DB_PATH is not set \(create a database with `balsam init DIR`/ },
  { name: "BALSAM_DB_PATH not a database", args: ["ls"], env: () => ({ BALSAM_DB_PATH: dirs.notADb }), code: 1, message: /is not a Balsam database \(no settings.json\)/ },
  { name: "MongoDB unreachable", args: ADD, env: () => ({ BALSAM_DB_PATH: dirs.mongoDown }), code: 1, message: /^balsam: cannot reach the MongoDB server at mongodb:\/\/127\.0\.0\.1:\d+ \(start it/ },
  { name: "Redis unreachable", args: ADD, env: () => ({ BALSAM_DB_PATH: dirs.redisDown }), code: 1, message: /^balsam: cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+ \(start it/ },
  { name: "init ''", args: ["init", ""], cwd: () => dirs.initCwd, unchanged: initCwdEmpty, code: 2, message: /^balsam: init needs a directory path, not '' \(e\.g\. balsam init ~\/mydb\)$/ },
  { name: "init --db-name 'bad name'", args: ["init", "x", "--db-name", "bad name"], cwd: () => dirs.initCwd, unchanged: initCwdEmpty, code: 2, message: /^balsam: database name 'bad name' is not allowed: use 1-60 letters, digits, _ or -$/ },
  { name: "init where no directory can be made", args: ["init", "/proc/nope"], unchanged: () => assert.equal(existsSync("/proc/nope"), false), code: 1, message: /^balsam: cannot create the database directory \/proc\/nope: ENOENT/ },
  { name: "init that fails half-way leaves nothing", args: ["init", "x"], cwd: () => dirs.initCwd, env: () => ({ BALSAM_HOME: join(f.dir, "a-file", "home") }), unchanged: initCwdEmpty, code: 1, message: /^balsam: cannot create the database directory .*init-cwd\/x: ENOTDIR/ },
  { name: "--num-nodes past 2^53", args: [...ADD, "--num-nodes", "99999999999999999999"], code: 2, message: /^balsam: --num-nodes must be ≤ 1000000, not 99999999999999999999$/ },
  { name: "--wall-time-minutes absurd", args: [...ADD, "--wall-time-minutes", "1000001"], code: 2, message: /^balsam: --wall-time-minutes must be ≤ 1000000, not 1000001$/ },
  { name: "modify num_nodes past 2^53", args: ["modify", P, "num_nodes", "99999999999999999999"], code: 2, message: /^balsam: num_nodes is too large: 99999999999999999999$/ },
  { name: "modify num_nodes absurd", args: ["modify", P, "num_nodes", "1000001"], code: 2, message: /^balsam: num_nodes must be a whole number ≤ 1000000, not 1000001$/ },
  { name: "log -n abc", args: ["log", "-n", "abc"], code: 2, message: /^balsam: -n\/--lines must be a whole number, not 'abc'$/ },
  { name: "log -n -1", args: ["log", "-n", "-1"], code: 2, message: /^balsam: -n\/--lines must be ≥ 1, not -1$/ },
  { name: "log -n 0", args: ["log", "-n", "0"], code: 2, message: /^balsam: -n\/--lines must be ≥ 1, not 0$/ },
  { name: "BALSAM_LEASE_TTL_MS=-5", args: LAUNCH, env: () => ({ BALSAM_LEASE_TTL_MS: "-5" }), code: 2, message: /^balsam: BALSAM_LEASE_TTL_MS must be a whole number of milliseconds from 1000 to 86400000, not '-5'$/ },
  { name: "BALSAM_LEASE_TTL_MS=abc", args: LAUNCH, env: () => ({ BALSAM_LEASE_TTL_MS: "abc" }), code: 2, message: /BALSAM_LEASE_TTL_MS must be a whole number of milliseconds from 1000 to 86400000, not 'abc'/ },
  { name: "BALSAM_KILL_GRACE_MS=soon", args: LAUNCH, env: () => ({ BALSAM_KILL_GRACE_MS: "soon" }), code: 2, message: /^balsam: BALSAM_KILL_GRACE_MS must be a whole number of milliseconds from 0 to 86400000, not 'soon'$/ },
  { name: "modify environ_vars without =", args: ["modify", P, "environ_vars", "PATH"], code: 2, message: /^balsam: environment entry 'PATH' must look like VAR=VALUE$/ },
  { name: "rm of a running job", args: ["rm", "jobs", "--id", R.slice(0, 8)], code: 1, message: new RegExp(`^balsam: 1 of the job\\(s\\) to remove is running: running \\(${R}\\) \\(stop them first with \`balsam killjob --id ID\`; \`rm --force\` removes`) },
  { name: "rm of a workflow with a running job", args: ["rm", "jobs", "--wf", "TEST", "--all"], code: 1, message: /^balsam: 1 of the job\(s\) to remove is running: running / },
  { name: "Redis refuses the password", args: ADD, env: () => ({ BALSAM_DB_PATH: dirs.wrongPassword }), code: 1, message: /^balsam: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ refused the password \(put the right one in the Redis URL in settings\.json/ },
  { name: "Redis wants a password", args: ["rm", "jobs", "--name", "task", "--force"], env: () => ({ BALSAM_DB_PATH: dirs.noPassword }), code: 1, message: /^balsam: Redis at redis:\/\/127\.0\.0\.1:\d+ requires a password and none was given/ },
  { name: "ambiguous option abbreviation", args: ["ls", "--h"], code: 2, message: /^balsam: option '--h' is ambiguous: it could be --history, --help \(give more of its name\)$/ },
  { name: "ambiguous abbreviation of a job option", args: [...ADD, "--post"], code: 2, message: /option '--post' is ambiguous: it could be --postprocessor, --post-handle-error, --post-handle-timeout/ },
  { name: "--env with an empty name", args: [...ADD, "--env", "=5"], code: 2, message: /^balsam: --env: environment entry '=5' has an empty variable name$/ },
  { name: "rerun with no selector", args: ["rerun"], code: 2, message: /^balsam: rerun needs a job id or a selector: --id, --name, --wf, --state or --tag/ },
  { name: "rerun of a job that has not ended", args: ["rerun", P], code: 1, message: /is READY; only FAILED, USER_KILLED or JOB_FINISHED jobs can be rerun/ },
  { name: "rerun by a state that is not final", args: ["rerun", "--state", "READY"], code: 2, message: /^balsam: only FAILED, USER_KILLED or JOB_FINISHED jobs can be rerun, not READY$/ },
  { name: "modify state CREATED of a job that has not ended", args: ["modify", P, "state", "CREATED"], code: 1, message: /cannot move a job from READY to CREATED/ },
  { name: "rm of an unknown kind", args: ["rm", "things", "--all", "--force"], code: 2, message: /^balsam: 'things' is not something to list or remove: use jobs, apps$/ },
  { name: "Redis unreachable for rm", args: ["rm", "jobs", "--name", "task", "--force"], env: () => ({ BALSAM_DB_PATH: dirs.redisDown }), code: 1, message: /cannot reach Redis/ },
];

/** Everything a command could have changed: every job's state, parents and update time, every app. */
async function snapshot(): Promise<unknown> {
  const jobs = await coll(ctx.store).jobs.find({}, { projection: { state: 1, parents: 1, updatedAt: 1, numNodes: 1, args: 1 } }).sort({ _id: 1 }).toArray();
  const apps = await coll(ctx.store).apps.find({}).sort({ name: 1 }).toArray();
  const queued = await ctx.queues.pending("TEST");
  return { jobCount: jobs.length, appCount: apps.length, jobs, apps, queued };
}

// Cases run four at a time: each is a subprocess start (about 1.5 s here) and
// none may change anything, so a change any of them made still shows up.
describe("bad input: one line, the right exit code, nothing changed", { concurrency: 4 }, () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const before = await snapshot();
      const r = await f.db.run(c.args, { env: c.env?.() ?? {}, cwd: c.cwd?.() });
      assert.equal(r.code, c.code, `exit code of balsam ${c.args.join(" ")}; stderr: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`);
      assert.match(lines[0] ?? "", /^balsam: /);
      assert.match(lines[0] ?? "", c.message);
      assert.equal(r.stdout, "");
      assert.deepEqual(await snapshot(), before);
      c.unchanged?.();
    });
  }

  test("the fixture is as the cases assume", async () => {
    assert.equal(await coll(ctx.store).jobs.countDocuments(), 4);
    assert.equal(await coll(ctx.store).apps.countDocuments(), 1);
  });
});
