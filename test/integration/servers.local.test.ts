/**
 * A local database's servers as a cluster uses them: only the processes that
 * were started are ever signalled, a restarted server keeps its port, and a
 * compute node (a network + UTS namespace with another host name, made here
 * with `unshare`) never starts servers of its own on the shared directory.
 */
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createServer } from "node:net";
import { readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { BALSAM_BIN } from "../support/cli.js";
import { useLocalDb } from "../support/local-db.js";
import { isAlive, waitFor } from "../../services/dbserver/servers.js";

describe("local servers on a cluster", () => {
  const db = useLocalDb("cluster");
  const sleepers: number[] = [];
  after(() => {
    for (const p of sleepers) if (isAlive(p)) process.kill(p, "SIGKILL");
  });

  test("pids in server-info.json that are not the servers started are never signalled", async () => {
    const sleeper = () => {
      const c = spawn("sleep", ["600"], { detached: true, stdio: "ignore" });
      c.unref();
      sleepers.push(c.pid!);
      return c.pid!;
    };
    const [a, b, c, d] = [sleeper(), sleeper(), sleeper(), sleeper()];
    // As an older version wrote it (no identity), then with an identity that is not theirs.
    const fake = (scheme: string, pid: number, extra = {}) => ({ url: `${scheme}://127.0.0.1:1`, pid, port: 1, host: "127.0.0.1", ...extra });
    writeFileSync(join(db.dir, "server-info.json"), JSON.stringify({ mongo: { ...fake("mongodb", a), kind: "ferretdb" }, redis: fake("redis", b) }));
    const ls = await db.run(["ls"]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stderr, /started the local servers/);
    assert.ok(isAlive(a) && isAlive(b), "ls signalled pids it did not start");
    const id = { machine: hostname(), bootId: "x", startTicks: "1", exe: "/usr/bin/redis-server" };
    assert.equal((await db.run(["server", "--stop"])).code, 0);
    writeFileSync(join(db.dir, "server-info.json"), JSON.stringify({ mongo: { ...fake("mongodb", c, id), kind: "ferretdb" }, redis: fake("redis", d, id) }));
    const stop = await db.run(["server", "--stop"]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /no local server was running/);
    assert.match(stop.stdout, new RegExp(`pid ${d} recorded for redis is not the server that was started there .*: left alone`));
    assert.ok(isAlive(c) && isAlive(d), "server --stop signalled pids it did not start");
  });

  test("a server killed with SIGKILL comes back on its recorded port", async () => {
    assert.equal((await db.run(["server", "--connect"])).code, 0);
    const before = await db.killServers();
    const again = await db.run(["server", "--connect"]);
    assert.equal(again.code, 0, again.stderr);
    const after = db.serverInfo();
    assert.notEqual(after.redis.pid, before.redis.pid);
    assert.equal(after.redis.port, before.redis.port);
    assert.equal(after.mongo.port, before.mongo.port);
  });

  test("a server whose port was taken meanwhile says so, since running launchers cannot find it", async () => {
    const before = db.serverInfo();
    process.kill(before.redis.pid, "SIGKILL");
    await waitFor(() => !isAlive(before.redis.pid), 10_000, "redis to die");
    // Something that is not Redis takes the port: it accepts and never answers.
    const squatter = createServer((sock) => sock.on("error", () => undefined));
    await new Promise<void>((resolveListen, reject) => {
      squatter.once("error", reject);
      squatter.listen(before.redis.port, "127.0.0.1", () => resolveListen());
    });
    try {
      const again = await db.run(["server", "--connect"]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, new RegExp(`redis-server on 127\\.0\\.0\\.1:\\d+ \\(pid \\d+\\) — its recorded port ${before.redis.port} was taken, so running launchers cannot find it: restart them`));
      assert.notEqual(db.serverInfo().redis.port, before.redis.port);
    } finally {
      squatter.close();
    }
  });

  test("--listen-all on servers running on loopback only is refused, not reported as fine", async () => {
    const r = await db.run(["server", "--connect", "--listen-all"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^balsam: the local servers are running on 127\.0\.0\.1 only, so other machines cannot reach them \(stop them/);
  });

  test("--listen-all records this machine's name, so other hosts can use the URLs", async () => {
    assert.equal((await db.run(["server", "--stop"])).code, 0);
    const r = await db.run(["server", "--connect", "--listen-all"]);
    assert.equal(r.code, 0, r.stderr);
    const i = db.serverInfo();
    for (const rec of [i.mongo, i.redis]) {
      assert.equal(rec.host, "0.0.0.0");
      assert.equal(rec.machine, hostname());
      assert.match(rec.url, new RegExp(`@${hostname()}:${rec.port}`));
    }
    const ls = await db.run(["ls"]);
    assert.equal(ls.code, 0, ls.stderr);
  });

  test("a compute node that cannot reach the servers says where they run and starts none", async () => {
    const before = readFileSync(join(db.dir, "server-info.json"), "utf8");
    let out = "";
    let code = 0;
    try {
      // Its own network (no route to this machine's loopback) and host name.
      out = execFileSync(
        "unshare",
        ["--net", "--uts", "sh", "-c", `hostname cn1 && ip link set lo up 2>/dev/null; exec "$0" "${BALSAM_BIN}" ls`, process.execPath],
        { env: { ...process.env, ...db.env }, stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 },
      ).toString();
    } catch (err) {
      const e = err as { status?: number; stderr?: Buffer };
      code = e.status ?? 1;
      out = e.stderr?.toString() ?? "";
    }
    assert.equal(code, 1, out);
    assert.match(out, new RegExp(`^balsam: cannot reach the local servers of ${db.dir} at ${hostname()} \\(this is cn1\\) \\(they run on ${hostname()}: start them there`));
    assert.equal(out.trim().split("\n").length, 1, out);
    assert.equal(readFileSync(join(db.dir, "server-info.json"), "utf8"), before, "server-info.json was rewritten");
    const i = db.serverInfo();
    assert.ok(isAlive(i.mongo.pid) && isAlive(i.redis.pid), "the login node's servers were stopped");
  });
});
