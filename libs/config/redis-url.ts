import { ConfigError } from "../errors/index.js";
import { redactUrl } from "./redact.js";

/**
 * Where a database's queues live, read from its Redis URL. Three forms:
 *
 *   redis://[[user]:password@]host:port[/db]       one server (and rediss://), parsed by ioredis as before
 *   redis-cluster://[[user]:password@]host:port[,host:port…]
 *                                                  seed nodes of a Redis Cluster; the rest is discovered
 *   redis-sentinel://[[user]:password@]host:port[,host:port…]/master-name
 *                                                  Sentinels and the name of the master group they watch
 *
 * The password is the data nodes' and, for Sentinel, the Sentinels' own too
 * (one secret per deployment, as `balsam init` makes for a local server).
 * Pure and driver-free: `balsam init` checks a URL with it before writing
 * anything.
 */

export interface HostPort {
  host: string;
  port: number;
}

interface Credentials {
  username?: string;
  password?: string;
}

export type RedisTarget =
  | { kind: "single"; url: string }
  | ({ kind: "cluster"; url: string; nodes: HostPort[] } & Credentials)
  | ({ kind: "sentinel"; url: string; sentinels: HostPort[]; masterName: string } & Credentials);

export const CLUSTER_SCHEME = "redis-cluster";
export const SENTINEL_SCHEME = "redis-sentinel";

const FORMS = "redis://[:password@]host:port, redis-cluster://[:password@]host:port[,host:port…] or redis-sentinel://[:password@]host:port[,host:port…]/master-name";
const DEFAULT_PORT = { [CLUSTER_SCHEME]: 6379, [SENTINEL_SCHEME]: 26379 } as const;
/** A Sentinel master group name as `sentinel monitor` accepts one in practice. */
const MASTER_NAME = /^[A-Za-z0-9._-]{1,100}$/;

function bad(url: string, why: string): ConfigError {
  return new ConfigError(`Redis URL '${redactUrl(url)}' is not valid: ${why}`, { hint: `use ${FORMS}` });
}

function decode(url: string, part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw bad(url, `its ${what} is not percent-encoded correctly`);
  }
}

function hostPort(url: string, raw: string, defaultPort: number): HostPort {
  // [v6]:port, host:port, or a host alone.
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+))(?::(\d*))?$/.exec(raw);
  if (!m) throw bad(url, `'${raw}' is not host:port`);
  const host = (m[1] ?? m[2]) as string;
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  if (!(Number.isInteger(port) && port >= 1 && port <= 65535) || m[3] === "") throw bad(url, `'${raw}' has no valid port (1-65535)`);
  return { host, port };
}

/**
 * What a Redis URL names. Throws a ConfigError saying what is wrong, in one
 * line, for a URL of none of the three forms.
 */
export function parseRedisUrl(url: string): RedisTarget {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url)?.[1]?.toLowerCase();
  if (scheme !== CLUSTER_SCHEME && scheme !== SENTINEL_SCHEME) {
    // No scheme at all is what ioredis reads as host:port, as it always did.
    if (scheme === undefined || scheme === "redis" || scheme === "rediss") return { kind: "single", url };
    throw bad(url, `unknown scheme '${scheme}://'`);
  }
  const m = /^[^:]+:\/\/(?:([^@/]*)@)?([^/?#]*)(?:\/([^?#]*))?(\?[^#]*)?(#.*)?$/.exec(url);
  if (!m) throw bad(url, "it cannot be read");
  const [, userinfo, hosts = "", path = "", query, fragment] = m;
  if (query || fragment) throw bad(url, "options after '?' or '#' are not supported in this form");
  const creds: Credentials = {};
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(":");
    const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
    if (user) creds.username = decode(url, user, "user name");
    if (colon >= 0) creds.password = decode(url, userinfo.slice(colon + 1), "password");
  }
  if (!hosts) throw bad(url, "it names no host");
  const list = hosts.split(",").map((h) => hostPort(url, h.trim(), DEFAULT_PORT[scheme]));
  if (scheme === CLUSTER_SCHEME) {
    if (path) throw bad(url, "a cluster has no database number or name after the hosts (a cluster serves database 0 only)");
    return { kind: "cluster", url, nodes: list, ...creds };
  }
  const masterName = decode(url, path, "master name");
  if (!masterName) throw bad(url, "it names no master group (…/master-name, as in `sentinel monitor master-name …`)");
  if (!MASTER_NAME.test(masterName)) throw bad(url, `master name '${masterName}' may use letters, digits, '.', '_' and '-' only`);
  return { kind: "sentinel", url, sentinels: list, masterName, ...creds };
}

/** How `balsam which` and errors name the kind of deployment. */
export function describeRedisKind(target: RedisTarget): string {
  if (target.kind === "cluster") return "Redis Cluster";
  if (target.kind === "sentinel") return `Redis Sentinel (master '${target.masterName}')`;
  return "Redis";
}

/**
 * A queue prefix usable with this deployment. Each workflow's queue carries
 * its own hash tag (`{workflow}`), so on a cluster a prefix with braces would
 * hash every workflow's keys by the prefix instead: one slot, one shard for
 * all. Refused there, with the reason.
 */
export function checkQueuePrefix(target: RedisTarget, prefix: string): void {
  if (target.kind === "cluster" && /[{}]/.test(prefix)) {
    throw new ConfigError(`queue prefix '${prefix}' has braces: on Redis Cluster they would put every workflow's queue in one hash slot`, {
      hint: "use a prefix without braces (e.g. balsam): each workflow's queue carries its own hash tag",
    });
  }
}
