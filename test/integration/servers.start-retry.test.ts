/**
 * A server started on a port chosen for it can find the port taken by the
 * time it binds (another test file's servers start side by side): it exits at
 * start, and is started again on another port; a port the caller named is
 * tried once. A stand-in `mongod` first on PATH (startMongo prefers mongod)
 * exits at its first starts, as a server on a taken port does, then runs the
 * provisioned FerretDB on the port it was given.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findMongoBinary, freePort, startMongo } from "../../services/dbserver/servers.js";
import { pingMongo } from "../../libs/store/index.js";

const STAND_IN = `#!/bin/sh
n=$(cat "$STAND_IN_COUNT" 2>/dev/null || echo 0)
echo $((n + 1)) > "$STAND_IN_COUNT"
echo "$*" >> "$STAND_IN_COUNT.args"
[ "$n" -lt "$STAND_IN_FAILS" ] && exit 1
while [ $# -gt 0 ]; do
  case "$1" in
    --dbpath) dbpath=$2; shift ;;
    --port) port=$2; shift ;;
    --bind_ip) bind=$2; shift ;;
  esac
  shift
done
exec "$STAND_IN_FERRETDB" --handler=sqlite "--sqlite-url=file:$dbpath/" "--listen-addr=$bind:$port" --telemetry=disable --debug-addr=- --state-dir=- --log-level=error
`;

async function withStandIn(fails: number, body: (count: () => number, ports: () => string[], dir: string) => Promise<void>): Promise<void> {
  const ferret = findMongoBinary();
  assert.ok(ferret && ferret.kind === "ferretdb", "the provisioned FerretDB (scripts/provision.sh)");
  const root = mkdtempSync(join(tmpdir(), "balsam-start-retry-"));
  const bin = join(root, "bin");
  mkdirSync(bin);
  writeFileSync(join(bin, "mongod"), STAND_IN);
  chmodSync(join(bin, "mongod"), 0o755);
  const countFile = join(root, "count");
  const saved = { PATH: process.env.PATH, STAND_IN_COUNT: process.env.STAND_IN_COUNT, STAND_IN_FAILS: process.env.STAND_IN_FAILS, STAND_IN_FERRETDB: process.env.STAND_IN_FERRETDB };
  Object.assign(process.env, { PATH: `${bin}:${process.env.PATH ?? ""}`, STAND_IN_COUNT: countFile, STAND_IN_FAILS: String(fails), STAND_IN_FERRETDB: ferret.path });
  try {
    await body(
      () => Number(readFileSync(countFile, "utf8").trim()),
      () => readFileSync(`${countFile}.args`, "utf8").trim().split("\n").map((l) => /--port (\d+)/.exec(l)?.[1] ?? "?"),
      join(root, "data"),
    );
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(root, { recursive: true, force: true });
  }
}

test("a MongoDB-wire server that exits at start on a port chosen for it is started again, on a port chosen afresh", async () => {
  await withStandIn(2, async (count, ports, dir) => {
    const h = await startMongo({ dir });
    try {
      assert.equal(h.kind, "mongod", "the stand-in on PATH was started");
      assert.equal(count(), 3, "two starts that exited, then one that runs");
      assert.equal(String(h.port), ports()[2]);
      assert.ok(await pingMongo(h.url, 5000), "the third start answers");
    } finally {
      await h.stop();
    }
  });
});

test("a MongoDB-wire server on a port the caller named is started once: exiting at start is the caller's error", async () => {
  await withStandIn(1, async (count, _ports, dir) => {
    const port = await freePort();
    await assert.rejects(startMongo({ dir, port }), /mongod exited at start/);
    assert.equal(count(), 1);
  });
});
