/**
 * The doors of a database served with `--listen-all`, tried from another
 * host: a network namespace made here (veth pair, its own addresses) stands
 * in for a compute node or an intruder on the cluster network.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runBalsam } from "../support/cli.js";
import { joinNamespace, type NetNode } from "../support/netns.js";

const PROBE = resolve(fileURLToPath(import.meta.url), "../../support/probe.js");

describe("a --listen-all database seen from another host", () => {
  const tag = randomBytes(3).toString("hex");
  const ns = `balsam-${tag}`;
  const [hostIf, nsIf] = [`vbh${tag}`, `vbn${tag}`];
  // A /30 of its own in 10.231.0.0/16, picked from the tag so parallel runs differ.
  const third = parseInt(tag.slice(0, 2), 16);
  const [hostIp, nsIp] = [`10.231.${third}.1`, `10.231.${third}.2`];
  let root: string;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let settings: { mongoPassword: string; redisPassword: string };
  let ports: { mongo: number; redis: number };
  let node: NetNode | undefined;
  const probe = (kind: string, url: string) =>
    execFileSync("ip", ["netns", "exec", ns, process.execPath, PROBE, kind, url], { timeout: 30_000 }).toString().trim();

  before(async () => {
    node = joinNamespace(ns, [hostIf, nsIf], [hostIp, nsIp]);
    root = mkdtempSync(join(tmpdir(), "balsam-net-"));
    dir = join(root, "db");
    env = { BALSAM_HOME: join(root, "home"), BALSAM_DB_PATH: dir };
    assert.equal((await runBalsam(["init", dir], { env })).code, 0);
    const up = await runBalsam(["server", "--connect", "--listen-all"], { env });
    assert.equal(up.code, 0, up.stderr);
    settings = JSON.parse(readFileSync(join(dir, "settings.json"), "utf8")) as typeof settings;
    const info = JSON.parse(readFileSync(join(dir, "server-info.json"), "utf8")) as { mongo: { port: number }; redis: { port: number } };
    ports = { mongo: info.mongo.port, redis: info.redis.port };
  });
  after(async () => {
    await runBalsam(["server", "--stop"], { env });
    node?.remove();
    rmSync(root, { recursive: true, force: true });
  });

  test("MongoDB: refused without the password and with a wrong one; the right one gets in", () => {
    assert.match(probe("mongo", `mongodb://${hostIp}:${ports.mongo}`), /^refused/);
    assert.match(probe("mongo", `mongodb://balsam:guess@${hostIp}:${ports.mongo}/?authSource=admin`), /^refused/);
    // The control: the network path is open, so the refusals above are the password's.
    assert.equal(probe("mongo", `mongodb://balsam:${encodeURIComponent(settings.mongoPassword)}@${hostIp}:${ports.mongo}/?authSource=admin`), "ok");
  });

  test("Redis: refused without the password; the right one gets in", () => {
    assert.match(probe("redis", `redis://${hostIp}:${ports.redis}`), /^refused/);
    assert.match(probe("redis", `redis://:guess@${hostIp}:${ports.redis}`), /^refused/);
    assert.equal(probe("redis", `redis://:${encodeURIComponent(settings.redisPassword)}@${hostIp}:${ports.redis}`), "ok");
  });
});
