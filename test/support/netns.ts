import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";

/**
 * A stand-in compute node: a network namespace joined to this host by a veth
 * pair on a /30 of its own (as test/integration/security.network.test.ts
 * makes one). Its link can be cut and restored from the host side.
 */
export interface NetNode {
  ns: string;
  /** This host's address on the node's link: where the node reaches the servers. */
  hostIp: string;
  /** Runs a command inside the namespace (prefix for startLauncher). */
  exec: string[];
  down(): void;
  up(): void;
  remove(): void;
}

const ip = (...args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });

/** `count` nodes, numbered from 0, on 10.233.X.0/24 (X from a random tag, so parallel runs differ). */
export function makeNodes(count: number): NetNode[] {
  const tag = randomBytes(3).toString("hex");
  const third = parseInt(tag.slice(0, 2), 16);
  return Array.from({ length: count }, (_, i) => joinNamespace(`balsam-${tag}-${i}`, [`vfh${tag}${i}`, `vfn${tag}${i}`], [`10.233.${third}.${4 * i + 1}`, `10.233.${third}.${4 * i + 2}`]));
}

/** A namespace `ns` joined to this host by the veth pair `[hostIf, nsIf]` with addresses `[hostIp, nsIp]` on a /30. */
export function joinNamespace(ns: string, [hostIf, nsIf]: [string, string], [hostIp, nsIp]: [string, string]): NetNode {
  ip("netns", "add", ns);
  ip("link", "add", hostIf, "type", "veth", "peer", "name", nsIf);
  ip("link", "set", nsIf, "netns", ns);
  ip("addr", "add", `${hostIp}/30`, "dev", hostIf);
  ip("link", "set", hostIf, "up");
  ip("netns", "exec", ns, "ip", "addr", "add", `${nsIp}/30`, "dev", nsIf);
  ip("netns", "exec", ns, "ip", "link", "set", nsIf, "up");
  ip("netns", "exec", ns, "ip", "link", "set", "lo", "up");
  return {
    ns,
    hostIp,
    exec: ["ip", "netns", "exec", ns],
    down: () => ip("link", "set", hostIf, "down"),
    up: () => ip("link", "set", hostIf, "up"),
    remove: () => {
      try {
        ip("link", "del", hostIf);
      } catch {
        // gone with the namespace
      }
      ip("netns", "del", ns);
    },
  };
}
