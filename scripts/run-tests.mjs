// Runs the compiled test files with node's test runner. Starts one set of
// test servers for the whole run (unless MONGODB_URL/REDIS_URL are given) so
// each file does not pay FerretDB's start-up; files get their own database
// name and queue prefix on them. `--cluster` runs test/cluster/ instead (`npm
// run test:cluster`): files that start Redis Clusters and Sentinel groups of
// their own and fail them over; a name given explicitly runs wherever it is.
import { readdirSync, statSync, existsSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "node:child_process";

const root = new URL("..", import.meta.url).pathname;
const distTest = join(root, "dist", "test");
if (!existsSync(distTest)) {
  console.error("run-tests: dist/test is missing; run `npm run build` first");
  process.exit(1);
}
const clusterPass = process.argv.includes("--cluster");
const want = process.argv.slice(2).filter((a) => a !== "--cluster");
const inClusterDir = (f) => f.includes(`${join("test", "cluster")}/`);
function walk(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith(".test.js") ? [p] : [];
  });
}
const files = walk(distTest)
  .filter((f) => (want.length === 0 ? inClusterDir(f) === clusterPass : want.some((w) => f.includes(w))))
  .sort();
if (files.length === 0) {
  console.error("run-tests: no test files matched");
  process.exit(1);
}

const { startTestServers } = await import(join(root, "dist/test/support/servers.js"));
let servers;
if (!process.env.MONGODB_URL || !process.env.REDIS_URL) {
  servers = await startTestServers();
  process.env.MONGODB_URL ??= servers.mongoUrl;
  process.env.REDIS_URL ??= servers.redisUrl;
}
// A run stopped by a signal (CI timeout, Ctrl-C) still stops its servers.
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    child.kill(sig);
  });
}
const child = spawn(
  process.execPath,
  ["--test", "--test-reporter=spec", `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`, "--test-timeout=900000", ...files],
  { stdio: "inherit", env: process.env },
);
const code = await new Promise((r) => child.on("exit", (c, sig) => r(c ?? (sig ? 1 : 0))));
if (servers) await servers.stop();
process.exit(code);
