/**
 * Which compute nodes a launcher owns, read from the batch scheduler's
 * environment. Pure: the only I/O (reading a nodefile) is injected.
 */
import { ConfigError, UsageError } from "../errors/index.js";

export interface NodeInfo {
  host: string;
  cores: number;
  gpus: number;
  /** The devices behind `gpus` (libs/platform/gpus.ts); default "0" … "gpus-1". */
  gpuIds?: string[];
}

export type NodeSource = "override" | "slurm" | "cobalt" | "pbs" | "lsf" | "local";

export interface DiscoverNodesOptions {
  /** Reads a nodefile (`COBALT_NODEFILE`, `PBS_NODEFILE`); throws if it cannot. */
  readFile: (path: string) => string;
  /** Used when no scheduler variable is set. */
  localHost: string;
  /** Used when neither `SLURM_CPUS_ON_NODE` nor `BALSAM_CORES_PER_NODE` is set. */
  localCores: number;
  /** GPUs on each node. Default 0: no scheduler variable here says it reliably. */
  gpusPerNode?: number;
}

export interface DiscoveredNodes {
  scheduler: NodeSource;
  nodes: NodeInfo[];
}

// Aurora, the largest machine Balsam targets, has ~10,600 nodes. A typo such
// as `nid[0-99999999]` would otherwise allocate 10^8 strings before failing.
const MAX_EXPANDED_HOSTS = 100_000;

/**
 * Expands a Slurm compressed host list: `nid[0001-0004,0010]`, `a[1-2],b3`,
 * `r[1-2]n[1-2]` (cartesian product, leftmost group varying slowest). A range
 * is zero-padded to the width of its lower bound, as Slurm's hostlist.c does.
 */
export function expandHostList(s: string): string[] {
  const hosts: string[] = [];
  for (const piece of splitTopLevel(s)) {
    const name = piece.trim();
    if (name === "") continue;
    for (const host of expandOneName(name, s)) {
      hosts.push(host);
      if (hosts.length > MAX_EXPANDED_HOSTS) {
        throw new ConfigError(`host list '${s}' expands to more than ${MAX_EXPANDED_HOSTS} hosts`);
      }
    }
  }
  return hosts;
}

function splitTopLevel(s: string): string[] {
  const pieces: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "[") depth++;
    else if (c === "]") depth--;
    else if (c === "," && depth === 0) {
      pieces.push(s.slice(start, i));
      start = i + 1;
    }
  }
  pieces.push(s.slice(start));
  return pieces;
}

function expandOneName(name: string, whole: string): string[] {
  // Each element is the list of alternatives for one stretch of the name.
  const parts: string[][] = [];
  let i = 0;
  while (i < name.length) {
    const open = name.indexOf("[", i);
    const close = name.indexOf("]", i);
    if (open === -1) {
      if (close !== -1) throw new ConfigError(`host list '${whole}': unmatched ']' in '${name}'`);
      parts.push([name.slice(i)]);
      break;
    }
    if (close !== -1 && close < open) {
      throw new ConfigError(`host list '${whole}': unmatched ']' in '${name}'`);
    }
    if (open > i) parts.push([name.slice(i, open)]);
    const end = name.indexOf("]", open);
    if (end === -1) throw new ConfigError(`host list '${whole}': unmatched '[' in '${name}'`);
    const body = name.slice(open + 1, end);
    if (body.includes("[")) throw new ConfigError(`host list '${whole}': nested '[' in '${name}'`);
    parts.push(expandBracket(body, whole));
    i = end + 1;
  }
  let out = [""];
  for (const alternatives of parts) {
    if (out.length * alternatives.length > MAX_EXPANDED_HOSTS) {
      throw new ConfigError(`host list '${whole}' expands to more than ${MAX_EXPANDED_HOSTS} hosts`);
    }
    out = out.flatMap((prefix) => alternatives.map((a) => prefix + a));
  }
  return out;
}

function expandBracket(body: string, whole: string): string[] {
  const out: string[] = [];
  for (const raw of body.split(",")) {
    const item = raw.trim();
    const m = /^(\d+)(?:-(\d+))?$/.exec(item);
    if (!m) throw new ConfigError(`host list '${whole}': '${item}' is not a number or a range like 01-04`);
    const loText = m[1] ?? "";
    const lo = Number(loText);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new ConfigError(`host list '${whole}': range '${item}' runs backwards`);
    if (hi - lo + 1 > MAX_EXPANDED_HOSTS) {
      throw new ConfigError(`host list '${whole}' expands to more than ${MAX_EXPANDED_HOSTS} hosts`);
    }
    for (let n = lo; n <= hi; n++) out.push(String(n).padStart(loText.length, "0"));
  }
  return out;
}

/**
 * Parses Cobalt's `COBALT_PARTNAME` (`1-4,10,12-13`) into node ids as decimal
 * strings ("1", "2", ...): on Theta `aprun -L` wants these numeric nids, not
 * host names.
 */
export function parseCobaltPartname(s: string): string[] {
  const ids: string[] = [];
  for (const raw of s.split(",")) {
    const item = raw.trim();
    if (item === "") continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(item);
    if (!m) throw new ConfigError(`COBALT_PARTNAME '${s}': '${item}' is not a node id or a range like 1-4`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new ConfigError(`COBALT_PARTNAME '${s}': range '${item}' runs backwards`);
    if (ids.length + (hi - lo + 1) > MAX_EXPANDED_HOSTS) {
      throw new ConfigError(`COBALT_PARTNAME '${s}' names more than ${MAX_EXPANDED_HOSTS} nodes`);
    }
    for (let n = lo; n <= hi; n++) ids.push(String(n));
  }
  return ids;
}

/**
 * Parses a PBS/Cobalt nodefile: one host per line, repeated once per core
 * (PBS writes `ppn` lines per node), so repeats collapse and order is kept.
 */
export function parseNodefile(text: string): string[] {
  return unique(
    text
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line !== ""),
  );
}

/**
 * Parses LSF's `LSB_HOSTS`: space-separated, one entry per slot. On
 * Summit-like LSF systems the first entry is the launch ("batch") node where
 * the job script runs; it holds one slot and cannot run compute work, so it is
 * dropped when it appears exactly once and other hosts follow. A host that
 * appears several times, or is the only host, is a real compute host.
 */
export function parseLsfHosts(s: string): string[] {
  const entries = s.split(/\s+/).filter((e) => e !== "");
  const first = entries[0];
  if (first === undefined) return [];
  const hosts = unique(entries);
  const firstCount = entries.filter((e) => e === first).length;
  if (firstCount === 1 && hosts.length > 1) return hosts.slice(1);
  return hosts;
}

function unique(items: string[]): string[] {
  return [...new Set(items)];
}

/**
 * Finds the nodes of this batch job. The first source set wins:
 * `BALSAM_NODELIST` (comma-separated host names) → Slurm
 * (`SLURM_JOB_NODELIST`, else `SLURM_NODELIST`) → Cobalt (`COBALT_NODEFILE`,
 * else `COBALT_PARTNAME`) → PBS (`PBS_NODEFILE`) → LSF (`LSB_HOSTS`) → the
 * local host. Cores per node: `SLURM_CPUS_ON_NODE`, else
 * `BALSAM_CORES_PER_NODE`, else `localCores`.
 *
 * A variable set to the empty string counts as unset. A variable that is set
 * but yields no hosts throws, rather than quietly running on the local host.
 */
export function discoverNodes(env: NodeJS.ProcessEnv, opts: DiscoverNodesOptions): DiscoveredNodes {
  const cores =
    positiveIntFromEnv(env, "SLURM_CPUS_ON_NODE") ??
    positiveIntFromEnv(env, "BALSAM_CORES_PER_NODE") ??
    requirePositiveInt(opts.localCores, "localCores");
  const gpus = opts.gpusPerNode ?? 0;
  if (!Number.isInteger(gpus) || gpus < 0) {
    throw new ConfigError(`gpusPerNode must be a whole number >= 0, got ${gpus}`);
  }
  const { scheduler, hosts } = discoverHosts(env, opts);
  return { scheduler, nodes: hosts.map((host) => ({ host, cores, gpus })) };
}

/** Where hosts come from, first set wins. `nodefile`: the variable names a file of hosts, else it lists them. */
const HOST_SOURCES: ReadonlyArray<{ variable: string; scheduler: NodeSource } & ({ nodefile: true } | { parse: (value: string) => string[] })> = [
  { variable: "BALSAM_NODELIST", scheduler: "override", parse: (v) => v.split(",").map((h) => h.trim()).filter((h) => h !== "") },
  { variable: "SLURM_JOB_NODELIST", scheduler: "slurm", parse: expandHostList },
  { variable: "SLURM_NODELIST", scheduler: "slurm", parse: expandHostList },
  { variable: "COBALT_NODEFILE", scheduler: "cobalt", nodefile: true },
  { variable: "COBALT_PARTNAME", scheduler: "cobalt", parse: parseCobaltPartname },
  { variable: "PBS_NODEFILE", scheduler: "pbs", nodefile: true },
  { variable: "LSB_HOSTS", scheduler: "lsf", parse: parseLsfHosts },
];

function discoverHosts(env: NodeJS.ProcessEnv, opts: DiscoverNodesOptions): { scheduler: NodeSource; hosts: string[] } {
  for (const source of HOST_SOURCES) {
    const value = nonEmpty(env, source.variable);
    if (value === undefined) continue;
    const fromFile = "nodefile" in source;
    const hosts = fromFile ? parseNodefile(readNodefile(opts, source.variable, value)) : source.parse(value);
    const where = fromFile ? `${source.variable} ${value}` : `${source.variable} '${value}'`;
    return { scheduler: source.scheduler, hosts: nonEmptyHosts(hosts, where) };
  }
  return { scheduler: "local", hosts: [opts.localHost] };
}

function readNodefile(opts: DiscoverNodesOptions, name: string, path: string): string {
  try {
    return opts.readFile(path);
  } catch (err) {
    throw new ConfigError(`cannot read ${name} at ${path}`, {
      cause: err,
      hint: `unset ${name} or check that the batch job can read the file`,
    });
  }
}

function nonEmptyHosts(hosts: string[], source: string): string[] {
  if (hosts.length === 0) throw new ConfigError(`${source} lists no hosts`);
  return hosts;
}

function nonEmpty(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === "" ? undefined : value;
}

function positiveIntFromEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const value = nonEmpty(env, name);
  if (value === undefined) return undefined;
  // Slurm may write SLURM_CPUS_ON_NODE as a plain count; anything else is a misconfiguration.
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    throw new ConfigError(`${name} must be a whole number >= 1, got '${value}'`);
  }
  return Number(value);
}

function requirePositiveInt(n: number, name: string): number {
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${name} must be a whole number >= 1, got ${n}`);
  return n;
}

/**
 * The part of the allocation selected by `--limit-nodes` / `--offset-nodes`,
 * so several launchers can share one batch job. A limit larger than what is
 * left is clamped; an offset past the end throws, since a launcher with no
 * nodes could only idle until its wall time runs out.
 */
export function sliceNodes<T>(nodes: T[], limit?: number, offset?: number): T[] {
  const start = offset ?? 0;
  if (!Number.isInteger(start) || start < 0) {
    throw new UsageError(`--offset-nodes must be a whole number >= 0, got ${start}`);
  }
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new UsageError(`--limit-nodes must be a whole number >= 1, got ${limit}`);
  }
  if (start >= nodes.length) {
    throw new UsageError(`--offset-nodes ${start} is past the end: the allocation has ${nodes.length} node(s)`, {
      hint: nodes.length > 0 ? `use an offset from 0 to ${nodes.length - 1}` : undefined,
    });
  }
  return nodes.slice(start, limit === undefined ? undefined : start + limit);
}

/**
 * Whole minutes left in the batch job, rounded down so a job sized to fit is
 * never started in the last partial minute. The first set wins:
 * `BALSAM_END_TIME`, `SLURM_JOB_END_TIME`, `COBALT_ENDTIME` (all epoch
 * seconds). Undefined when none is set: the launcher then has no deadline.
 * Never negative.
 */
export function remainingMinutesFromEnv(env: NodeJS.ProcessEnv, now: Date): number | undefined {
  for (const name of ["BALSAM_END_TIME", "SLURM_JOB_END_TIME", "COBALT_ENDTIME"]) {
    const value = nonEmpty(env, name);
    if (value === undefined) continue;
    if (!/^\d+(\.\d+)?$/.test(value)) {
      throw new ConfigError(`${name} must be a time in epoch seconds, got '${value}'`);
    }
    const remainingMs = Number(value) * 1000 - now.getTime();
    return Math.max(0, Math.floor(remainingMs / 60_000));
  }
  return undefined;
}
