/**
 * docker-compose.yml and the Dockerfile checked against the code, since these
 * machines have no Docker engine to run them: every command a service runs
 * exists (npm script, balsam subcommand and its flags, the file it runs), every
 * environment variable a service sets is one the code reads, and the build
 * context holds everything the Dockerfile copies.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import picomatch from "picomatch";
import { parse as parseYaml } from "yaml";
import { SUBCOMMANDS } from "../../cli/registry.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const SOURCE_DIRS = ["libs", "services", "cli", "test", "bench", "examples", "scripts", "bin"];

interface Service {
  image?: string;
  build?: string | { context?: string };
  command?: string[] | string;
  environment?: Record<string, string | number | boolean | null> | string[];
  depends_on?: Record<string, { condition?: string }> | string[];
  healthcheck?: { test?: string[] | string };
  volumes?: string[];
  profiles?: string[];
  container_name?: string;
  ports?: unknown[];
}

interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

function read(rel: string): string {
  return readFileSync(join(ROOT, rel), "utf8");
}

// Compose resolves YAML merge keys (`<<: *balsam`), so the check does too.
const compose = parseYaml(read("docker-compose.yml"), { merge: true }) as Compose;
const services = compose.services;

function env(s: Service): Record<string, string> {
  if (!s.environment) return {};
  if (Array.isArray(s.environment)) {
    return Object.fromEntries(
      s.environment.map((kv) => {
        const i = kv.indexOf("=");
        return i < 0 ? [kv, ""] : [kv.slice(0, i), kv.slice(i + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(s.environment).map(([k, v]) => [k, v === null ? "" : String(v)]));
}

function command(s: Service): string[] {
  assert.ok(Array.isArray(s.command), "commands are exec-form lists, so no shell re-splits them");
  return s.command;
}

function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => {
    if (n === "node_modules" || n === "dist") return [];
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

/** Every source file, as text: what "the code reads" is checked against. */
const sources = SOURCE_DIRS.flatMap((d) => walk(join(ROOT, d)))
  .filter((f) => /\.(ts|mjs|js|sh)$/.test(f))
  .map((f) => ({ file: f.slice(ROOT.length + 1), text: readFileSync(f, "utf8") }));

/** Source files reading `name` from the environment: `env.X` / `env["X"]` (incl. process.env), or `$X` in a shell script. */
function readersOf(name: string): string[] {
  const code = [new RegExp(`\\benv\\.${name}\\b`), new RegExp(`\\benv\\[\\s*["'\`]${name}["'\`]\\s*\\]`)];
  const shell = new RegExp(`\\$\\{?${name}\\b`);
  return sources.filter((s) => (s.file.endsWith(".sh") ? [...code, shell] : code).some((p) => p.test(s.text))).map((s) => s.file);
}

/** The `balsam` program as the CLI builds it, to look subcommands and their flags up. */
function balsamProgram(): Command {
  const program = new Command("balsam");
  for (const { register } of SUBCOMMANDS) register(program);
  return program;
}
const program = balsamProgram();

function checkBalsamCommand(argv: readonly string[], where: string): void {
  const [sub, ...rest] = argv;
  assert.ok(sub, `${where}: balsam without a subcommand`);
  const cmd = program.commands.find((c) => c.name() === sub);
  assert.ok(cmd, `${where}: 'balsam ${sub}' is not a subcommand (${program.commands.map((c) => c.name()).join(", ")})`);
  const flags = new Set(cmd.options.flatMap((o) => [o.long, o.short].filter((x): x is string => Boolean(x))));
  for (const a of rest) {
    if (!a.startsWith("-")) continue;
    const flag = a.split("=")[0]!;
    assert.ok(flags.has(flag), `${where}: 'balsam ${sub}' has no option ${flag} (it has ${[...flags].join(", ")})`);
  }
}

/** A file a service runs must be in the image: built from a source file, or copied as is. */
function checkRunsFile(file: string, where: string): void {
  const m = /^dist\/(.+)\.js$/.exec(file);
  if (m) {
    const ts = `${m[1]}.ts`;
    assert.ok(existsSync(join(ROOT, ts)), `${where}: runs ${file}, but ${ts} does not exist`);
    const include = (JSON.parse(read("tsconfig.json")) as { include: string[] }).include;
    assert.ok(include.some((d) => ts.startsWith(`${d}/`)), `${where}: ${ts} is outside tsconfig's include (${include.join(", ")}), so it is never built`);
    return;
  }
  assert.ok(existsSync(join(ROOT, file)), `${where}: runs ${file}, which does not exist`);
}

/** What each service runs resolves to a real script, subcommand or file. */
function checkCommand(name: string, argv: readonly string[]): void {
  const where = `service ${name}`;
  const [exe, ...args] = argv;
  if (exe === "balsam") return checkBalsamCommand(args, where);
  if (exe === "node" && args[0] === "bin/balsam.js") return checkBalsamCommand(args.slice(1), where);
  if (exe === "node") {
    checkRunsFile(args[0]!, where);
    if (args[0] === "scripts/run-tests.mjs") {
      // Its arguments select test files by path: each must select some.
      for (const sel of args.slice(1)) {
        assert.ok(
          walk(join(ROOT, "test")).some((f) => f.endsWith(".test.ts") && f.slice(ROOT.length + 1).includes(sel)),
          `${where}: run-tests filter '${sel}' matches no test file`,
        );
      }
    }
    return;
  }
  if (exe === "npm") {
    assert.equal(args[0], "run", `${where}: npm ${args[0]}`);
    const scripts = (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts;
    assert.ok(scripts[args[1]!], `${where}: no npm script '${args[1]}'`);
    return;
  }
  if (exe === "sh" || exe === "bash") {
    checkRunsFile(args[0]!, where);
    // The balsam commands inside the script are checked the same way.
    for (const line of read(args[0]!).split("\n")) {
      const m = /(?:^|\s|exec\s+)balsam\s+(.*)$/.exec(line.replace(/#.*$/, ""));
      if (!m) continue;
      const words = m[1]!.split(/\s+/).filter(Boolean).map((w) => w.replace(/^"|"$/g, ""));
      checkBalsamCommand(words, `${where} (${args[0]})`);
    }
    return;
  }
  assert.fail(`${where}: runs '${exe}', which this check does not know how to verify`);
}

const built = Object.entries(services).filter(([, s]) => s.build !== undefined);

test("the compose file has the services the README promises", () => {
  for (const s of ["mongo", "redis", "init", "launcher", "demo", "test"]) assert.ok(services[s], `no service '${s}'`);
  const mongo = services.mongo!;
  assert.match(mongo.image ?? "", /^mongo:/);
  assert.ok(command(mongo).includes("--replSet"), "mongo runs as a replica set");
  const hc = JSON.stringify(mongo.healthcheck?.test ?? "");
  assert.match(hc, /rs\.initiate/, "the healthcheck initiates the single-node replica set");
  const redis = command(services.redis!).join(" ");
  assert.match(redis, /--appendonly yes/);
  assert.match(redis, /--maxmemory-policy noeviction/);
  assert.ok(services.redis!.healthcheck, "redis has a healthcheck");
});

test("every service's command exists: balsam subcommands and flags, npm scripts, the files it runs", () => {
  assert.ok(built.length >= 4);
  for (const [name, s] of built) checkCommand(name, command(s));
  // The launcher is the seed's consume-all serial launcher, kept alive.
  assert.deepEqual(command(services.launcher!).slice(0, 2), ["balsam", "launcher"]);
  for (const f of ["--consume-all", "--persistent", "--job-mode"]) assert.ok(command(services.launcher!).includes(f), `launcher lacks ${f}`);
});

test("bare `balsam` in a command is on the image's PATH, and bin/balsam.js can be executed", () => {
  const usesBare = built.some(([, s]) => command(s)[0] === "balsam") || read("scripts/compose-init.sh").includes("balsam init");
  if (!usesBare) return;
  assert.match(read("Dockerfile"), /ln -s \/app\/bin\/balsam\.js \/usr\/local\/bin\/balsam/);
  assert.ok(read("bin/balsam.js").startsWith("#!/usr/bin/env node"));
  assert.ok((statSync(join(ROOT, "bin/balsam.js")).mode & 0o111) !== 0, "bin/balsam.js is executable");
});

test("every environment variable a service sets is one the code reads", () => {
  for (const [name, s] of Object.entries(services)) {
    if (!s.build) continue; // mongo and redis: their images' variables, not ours
    for (const key of Object.keys(env(s))) {
      const readers = readersOf(key);
      assert.ok(readers.length > 0, `service ${name} sets ${key}, which no source file reads`);
    }
  }
});

test("the services agree on one database directory on the shared volume, and reach the compose servers", () => {
  const db = env(services.init!).BALSAM_DB_PATH;
  assert.ok(db, "init names the database directory");
  assert.equal(env(services.launcher!).BALSAM_DB_PATH, db, "the launchers use the directory init creates");
  assert.equal(env(services.demo!).BALSAM_DEMO_DIR, db, "the demo uses the same directory");
  for (const name of ["init", "launcher", "demo"]) {
    const mounts = (services[name]!.volumes ?? []).map((v) => v.split(":"));
    assert.ok(
      mounts.some(([vol, path]) => compose.volumes && vol! in compose.volumes && db.startsWith(`${path}/`)),
      `service ${name} does not mount a named volume holding ${db}`,
    );
  }
  const replSet = command(services.mongo!)[command(services.mongo!).indexOf("--replSet") + 1];
  for (const name of ["init", "test"]) {
    const e = env(services[name]!);
    const mongo = new URL(e.MONGODB_URL!);
    const redis = new URL(e.REDIS_URL!);
    assert.ok(services[mongo.hostname], `${name}: MONGODB_URL host ${mongo.hostname} is not a service`);
    assert.ok(services[redis.hostname], `${name}: REDIS_URL host ${redis.hostname} is not a service`);
    assert.equal(mongo.searchParams.get("replicaSet"), replSet, `${name}: MONGODB_URL names replica set ${replSet}`);
  }
});

test("services start in order: servers healthy, then the database directory, then launchers and the demo", () => {
  const conditions = (s: Service) => (Array.isArray(s.depends_on) ? {} : (s.depends_on ?? {}));
  for (const name of ["init", "launcher", "demo", "test"]) {
    const d = conditions(services[name]!);
    assert.equal(d.mongo?.condition, "service_healthy", `${name} waits for mongo`);
    assert.equal(d.redis?.condition, "service_healthy", `${name} waits for redis`);
  }
  for (const name of ["launcher", "demo"]) {
    assert.equal(conditions(services[name]!).init?.condition, "service_completed_successfully", `${name} waits for init`);
  }
  // `docker compose up --scale launcher=4` refuses a fixed container name or host port.
  assert.equal(services.launcher!.container_name, undefined);
  assert.equal(services.launcher!.ports, undefined);
});

test("the Dockerfile: node 20 with Open MPI, npm install, a build, and every COPY source in the build context", () => {
  const text = read("Dockerfile");
  assert.match(text, /^FROM node:20\b/m);
  assert.match(text, /apt-get install[^\n]*openmpi-bin/);
  assert.match(text, /RUN npm install\b/);
  assert.match(text, /npx tsc -p tsconfig\.json|npm run build/);
  const ignored = existsSync(join(ROOT, ".dockerignore"))
    ? read(".dockerignore")
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith("#"))
    : [];
  const isIgnored = picomatch(ignored.flatMap((p) => [p, `${p}/**`]));
  const copied: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^COPY\s+(?!--from)(.+)$/.exec(line.trim());
    if (!m) continue;
    const parts = m[1]!.split(/\s+/).filter((p) => !p.startsWith("--"));
    for (const src of parts.slice(0, -1)) {
      assert.ok(existsSync(join(ROOT, src)), `COPY ${src}: not in the build context`);
      assert.ok(!isIgnored(src), `COPY ${src}: excluded by .dockerignore`);
      copied.push(src.replace(/\/$/, ""));
    }
  }
  const inImage = (p: string) => copied.some((c) => p === c || p.startsWith(`${c}/`));
  // The build inside the image needs every directory tsc compiles and its config.
  const include = (JSON.parse(read("tsconfig.json")) as { include: string[] }).include;
  for (const d of [...include, "tsconfig.json", "package.json", "package-lock.json", "bin/balsam.js"]) assert.ok(inImage(d), `the Dockerfile does not COPY ${d}`);
  // And every file a service runs directly.
  for (const [name, s] of built) {
    const argv = command(s);
    const file = argv[0] === "node" || argv[0] === "sh" ? argv[1]! : undefined;
    if (file && !file.startsWith("dist/")) assert.ok(inImage(file), `service ${name} runs ${file}, which the Dockerfile does not COPY`);
  }
  // .dockerignore keeps the host's build output and dependencies out of the context.
  for (const p of ["node_modules", "dist"]) assert.ok(isIgnored(p), `.dockerignore should exclude ${p}`);
});
