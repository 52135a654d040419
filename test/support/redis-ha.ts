import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { newSecret } from "../../libs/config/index.js";
import { startRedis, waitFor, type ServerHandle } from "../../services/dbserver/servers.js";

/**
 * The real thing, from Debian's redis-server, on free loopback ports and
 * password-protected as our local servers are: a Redis Cluster of 3 masters
 * and 3 replicas, and a Sentinel group (a primary, a replica, 3 Sentinels).
 * Each test file that kills nodes starts its own.
 */

const run = promisify(execFile);
/** A master is declared failed after this long unreachable (cluster-node-timeout; Sentinel's down-after). */
export const NODE_TIMEOUT_MS = 2000;

export interface RedisNode extends ServerHandle {
  /** Set by kill(). */
  readonly killed: boolean;
  /** SIGKILL, as a crashed machine; the node is not restarted. */
  kill(): void;
  /** SIGSTOP / SIGCONT: a node that stops answering (and replicating) for a while. */
  pause(): void;
  resume(): void;
}

function asNode(h: ServerHandle): RedisNode {
  const node = {
    ...h,
    killed: false,
    kill: () => {
      node.killed = true;
      process.kill(h.pid, "SIGKILL");
    },
    pause: () => process.kill(h.pid, "SIGSTOP"),
    resume: () => process.kill(h.pid, "SIGCONT"),
    // A paused node would not see the SIGTERM stop() sends.
    stop: async () => {
      try {
        process.kill(h.pid, "SIGCONT");
      } catch {
        // already gone
      }
      await h.stop();
    },
  };
  return node;
}

/** One command to one node, on a connection of its own. */
export async function ask(port: number, password: string, ...args: [string, ...string[]]): Promise<unknown> {
  const c = new Redis({ host: "127.0.0.1", port, password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000, commandTimeout: 3000 });
  c.on("error", () => undefined);
  try {
    await c.connect();
    return await c.call(...args);
  } finally {
    c.disconnect();
  }
}

/** A line of CLUSTER NODES. */
export interface ClusterNodeInfo {
  id: string;
  port: number;
  flags: string[];
  /** The master's id for a replica, else undefined. */
  masterId: string | undefined;
  /** Slot ranges served, [from, to] inclusive. */
  slots: Array<[number, number]>;
}

export function parseClusterNodes(text: string): ClusterNodeInfo[] {
  return text
    .trim()
    .split("\n")
    .map((line) => {
      const [id = "", addr = "", flags = "", master = "-", , , , , ...slots] = line.trim().split(" ");
      return {
        id,
        port: Number(/:(\d+)@/.exec(addr)?.[1]),
        flags: flags.split(","),
        masterId: master === "-" ? undefined : master,
        slots: slots.filter((s) => /^\d+(-\d+)?$/.test(s)).map((s) => {
          const [a, b] = s.split("-").map(Number);
          return [a!, b ?? a!] as [number, number];
        }),
      };
    });
}

export interface RedisClusterHandle {
  /** redis-cluster://:password@… naming the three first masters as seeds. */
  url: string;
  password: string;
  nodes: RedisNode[];
  /** CLUSTER NODES as a live node sees it now. */
  topology(): Promise<ClusterNodeInfo[]>;
  /** The live master serving `slot`, and its replica. */
  ownerOf(slot: number): Promise<{ master: RedisNode; replica: RedisNode | undefined }>;
  /** Waits until every live node says cluster_state:ok and the live masters serve all 16384 slots. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

function liveNodes(nodes: RedisNode[]): RedisNode[] {
  return nodes.filter((n) => !n.killed);
}

/** A group's scratch directory, its one password, the nodes it starts, and how to stop them all. */
function scratch(prefix: string): { dir: string; password: string; nodes: RedisNode[]; stop: () => Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const nodes: RedisNode[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, password: newSecret(), nodes, stop };
}

/** 3 masters + 3 replicas: `redis-server --cluster-enabled yes` ×6, then `redis-cli --cluster create … --cluster-replicas 1`. */
export async function startRedisCluster(): Promise<RedisClusterHandle> {
  const { dir, password, nodes, stop } = scratch("balsam-cluster-");
  try {
    for (let i = 0; i < 6; i++) {
      const d = join(dir, `n${i}`);
      const extraArgs = ["--cluster-enabled", "yes", "--cluster-config-file", join(d, "nodes.conf"), "--cluster-node-timeout", String(NODE_TIMEOUT_MS), "--masterauth", password];
      nodes.push(asNode(await startRedis({ dir: d, password, appendOnly: false, extraArgs, logFile: join(dir, `n${i}.log`) })));
    }
    await run("redis-cli", ["-a", password, "--no-auth-warning", "--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", "1", "--cluster-yes"]);
    const topology = async () => {
      const n = liveNodes(nodes)[0];
      if (!n) throw new Error("no cluster node is alive");
      return parseClusterNodes(String(await ask(n.port, password, "CLUSTER", "NODES")));
    };
    const byPort = (port: number) => nodes.find((n) => n.port === port)!;
    const handle: RedisClusterHandle = {
      url: `redis-cluster://:${encodeURIComponent(password)}@${nodes.slice(0, 3).map((n) => `127.0.0.1:${n.port}`).join(",")}`,
      password,
      nodes,
      topology,
      ownerOf: async (slot) => {
        const t = await topology();
        const m = t.find((x) => x.flags.includes("master") && !x.flags.includes("fail") && x.slots.some(([a, b]) => slot >= a && slot <= b));
        if (!m) throw new Error(`no live master serves slot ${slot}`);
        const r = t.find((x) => x.masterId === m.id && !x.flags.includes("fail"));
        return { master: byPort(m.port), replica: r ? byPort(r.port) : undefined };
      },
      waitHealthy: async (timeoutMs = 30_000) => {
        await waitFor(
          async () => {
            const live = liveNodes(nodes);
            const infos = await Promise.all(live.map((n) => ask(n.port, password, "CLUSTER", "INFO").catch(() => "")));
            if (!infos.every((i) => /cluster_state:ok/.test(String(i)))) return false;
            // Every live node agrees who serves each slot (no master still flagged failing).
            const t = await topology();
            return t.filter((x) => x.flags.includes("master") && !x.flags.includes("fail")).reduce((a, x) => a + x.slots.reduce((s, [f, l]) => s + l - f + 1, 0), 0) === 16384;
          },
          timeoutMs,
          "the Redis Cluster to serve every slot",
          100,
        );
      },
      stop,
    };
    await handle.waitHealthy();
    // Roles spread by gossip after `--cluster create` returns: a replica is one once every node says so and its link is up.
    await waitFor(
      async () => {
        const views = await Promise.all(nodes.map((n) => ask(n.port, password, "CLUSTER", "NODES").then((t) => parseClusterNodes(String(t)))));
        if (!views.every((v) => v.filter((x) => x.flags.includes("slave")).length === 3)) return false;
        const replicas = views[0]!.filter((x) => x.flags.includes("slave")).map((x) => x.port);
        const links = await Promise.all(replicas.map((port) => ask(port, password, "INFO", "replication")));
        return links.every((l) => /master_link_status:up/.test(String(l)));
      },
      30_000,
      "every master's replica to be known and in sync",
      100,
    );
    return handle;
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface SentinelGroupHandle {
  /** redis-sentinel://:password@s1,s2,s3/balsam */
  url: string;
  password: string;
  masterName: string;
  /** The primary first started and its replica. */
  servers: RedisNode[];
  sentinels: RedisNode[];
  /** The data node the Sentinels name primary now. */
  primary(): Promise<RedisNode>;
  stop(): Promise<void>;
}

/** A primary, its replica and 3 Sentinels (`redis-server CONF --sentinel`), quorum 2. */
export async function startSentinelGroup(masterName = "balsam"): Promise<SentinelGroupHandle> {
  const { dir, password, nodes: all, stop } = scratch("balsam-sentinel-");
  try {
    const auth = ["--masterauth", password];
    const primary = asNode(await startRedis({ dir: join(dir, "primary"), password, appendOnly: false, extraArgs: auth, logFile: join(dir, "primary.log") }));
    all.push(primary);
    const replica = asNode(await startRedis({ dir: join(dir, "replica"), password, appendOnly: false, extraArgs: [...auth, "--replicaof", "127.0.0.1", String(primary.port)], logFile: join(dir, "replica.log") }));
    all.push(replica);
    await waitFor(async () => /master_link_status:up/.test(String(await ask(replica.port, password, "INFO", "replication"))), 15_000, "the replica to sync");
    const sentinels: RedisNode[] = [];
    for (let i = 0; i < 3; i++) {
      const d = join(dir, `s${i}`);
      mkdirSync(d, { recursive: true });
      const conf = join(d, "sentinel.conf");
      writeFileSync(
        conf,
        [
          `sentinel monitor ${masterName} 127.0.0.1 ${primary.port} 2`,
          `sentinel auth-pass ${masterName} ${password}`,
          `sentinel down-after-milliseconds ${masterName} ${NODE_TIMEOUT_MS / 2}`,
          `sentinel failover-timeout ${masterName} 10000`,
          `sentinel sentinel-pass ${password}`,
          "",
        ].join("\n"),
        { mode: 0o600 },
      );
      const s = asNode(await startRedis({ dir: d, password, appendOnly: false, configFile: conf, extraArgs: ["--sentinel"], logFile: join(dir, `s${i}.log`) }));
      sentinels.push(s);
      all.push(s);
    }
    // Each Sentinel has found the replica and the two other Sentinels (hello messages, every 2 s).
    await waitFor(
      async () => {
        const views = await Promise.all(sentinels.map((s) => ask(s.port, password, "SENTINEL", "MASTER", masterName).catch(() => [])));
        return views.every((v) => {
          const f = new Map<string, string>();
          const a = v as string[];
          for (let i = 0; i + 1 < a.length; i += 2) f.set(a[i]!, a[i + 1]!);
          return f.get("num-slaves") === "1" && f.get("num-other-sentinels") === "2" && f.get("flags") === "master";
        });
      },
      30_000,
      "the Sentinels to know the replica and each other",
      100,
    );
    return {
      url: `redis-sentinel://:${encodeURIComponent(password)}@${sentinels.map((s) => `127.0.0.1:${s.port}`).join(",")}/${masterName}`,
      password,
      masterName,
      servers: [primary, replica],
      sentinels,
      primary: async () => {
        const s = liveNodes(sentinels)[0]!;
        const [, port] = (await ask(s.port, password, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName)) as [string, string];
        return [primary, replica].find((n) => n.port === Number(port))!;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
