import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, UsageError } from "../../libs/errors/index.js";
import {
  discoverNodes,
  expandHostList,
  parseCobaltPartname,
  parseLsfHosts,
  parseNodefile,
  remainingMinutesFromEnv,
  sliceNodes,
  type DiscoverNodesOptions,
} from "../../libs/platform/index.js";

describe("expandHostList", () => {
  test("expands a range and a single id, keeping zero padding", () => {
    assert.deepEqual(expandHostList("nid[0001-0004,0010]"), [
      "nid0001",
      "nid0002",
      "nid0003",
      "nid0004",
      "nid0010",
    ]);
  });

  test("splits groups at top-level commas only", () => {
    assert.deepEqual(expandHostList("a[1-2],b3,c[05-06]"), ["a1", "a2", "b3", "c05", "c06"]);
  });

  test("plain names pass through", () => {
    assert.deepEqual(expandHostList("login1"), ["login1"]);
    assert.deepEqual(expandHostList("x1,x2"), ["x1", "x2"]);
  });

  test("several bracket groups give the cartesian product, leftmost slowest", () => {
    assert.deepEqual(expandHostList("r[1-2]n[1-2]"), ["r1n1", "r1n2", "r2n1", "r2n2"]);
    assert.deepEqual(expandHostList("r[1-2]n[1-2]-ib"), ["r1n1-ib", "r1n2-ib", "r2n1-ib", "r2n2-ib"]);
  });

  test("pads to the width of the lower bound, as Slurm does", () => {
    assert.deepEqual(expandHostList("n[8-11]"), ["n8", "n9", "n10", "n11"]);
    assert.deepEqual(expandHostList("n[08-11]"), ["n08", "n09", "n10", "n11"]);
  });

  test("empty string gives no hosts", () => {
    assert.deepEqual(expandHostList(""), []);
  });

  test("malformed lists throw ConfigError", () => {
    for (const bad of ["nid[1-2", "nid1-2]", "nid[a-b]", "nid[4-1]", "nid[1-[2]]", "nid[]"]) {
      assert.throws(() => expandHostList(bad), ConfigError, bad);
    }
  });

  test("refuses absurd expansions instead of allocating them", () => {
    assert.throws(() => expandHostList("nid[0-99999999]"), /more than 100000 hosts/);
    assert.throws(() => expandHostList("a[0-999]b[0-999]"), /more than 100000 hosts/);
  });
});

describe("parseCobaltPartname", () => {
  test("expands ranges into node id numbers", () => {
    assert.deepEqual(parseCobaltPartname("1-4,10,12-13"), ["1", "2", "3", "4", "10", "12", "13"]);
  });

  test("drops leading zeros: aprun wants numbers", () => {
    assert.deepEqual(parseCobaltPartname("0007-0008"), ["7", "8"]);
  });

  test("throws on anything that is not an id or range", () => {
    assert.throws(() => parseCobaltPartname("nid0001"), ConfigError);
    assert.throws(() => parseCobaltPartname("5-3"), /runs backwards/);
  });
});

describe("parseNodefile", () => {
  test("collapses per-core repeats, keeps order, skips blank lines", () => {
    const text = "n2\nn2\nn2\n\nn1\nn1\r\n  \nn3\nn2\n";
    assert.deepEqual(parseNodefile(text), ["n2", "n1", "n3"]);
  });

  test("empty file gives no hosts", () => {
    assert.deepEqual(parseNodefile("\n\n"), []);
  });
});

describe("parseLsfHosts", () => {
  test("drops the launch node that appears once before compute hosts", () => {
    assert.deepEqual(parseLsfHosts("batch1 h41n01 h41n01 h41n02 h41n02"), ["h41n01", "h41n02"]);
  });

  test("keeps the first host when it has several slots", () => {
    assert.deepEqual(parseLsfHosts("hostA hostA hostB hostB"), ["hostA", "hostB"]);
  });

  test("keeps a lone host", () => {
    assert.deepEqual(parseLsfHosts("hostA"), ["hostA"]);
  });

  test("tolerates extra whitespace; empty gives none", () => {
    assert.deepEqual(parseLsfHosts("  batch1   c1\tc1 c2 "), ["c1", "c2"]);
    assert.deepEqual(parseLsfHosts("   "), []);
  });
});

function opts(files: Record<string, string> = {}, extra: Partial<DiscoverNodesOptions> = {}): DiscoverNodesOptions {
  return {
    readFile: (p) => {
      const text = files[p];
      if (text === undefined) throw new Error(`ENOENT: ${p}`);
      return text;
    },
    localHost: "laptop",
    localCores: 8,
    ...extra,
  };
}

/** [test name, env, nodefiles, scheduler wanted, hosts wanted] */
const hostCases: Array<[string, Record<string, string>, Record<string, string>, string, string[]]> = [
  ["BALSAM_NODELIST overrides every scheduler", { BALSAM_NODELIST: "a, b,,c", SLURM_JOB_NODELIST: "nid[1-2]", LSB_HOSTS: "x y" }, {}, "override", ["a", "b", "c"]],
  ["Slurm: SLURM_NODELIST when SLURM_JOB_NODELIST is absent", { SLURM_NODELIST: "c[1-2]" }, {}, "slurm", ["c1", "c2"]],
  ["Slurm: SLURM_NODELIST when SLURM_JOB_NODELIST is empty", { SLURM_JOB_NODELIST: "", SLURM_NODELIST: "c[1-2]" }, {}, "slurm", ["c1", "c2"]],
  [
    "Cobalt: COBALT_NODEFILE is read and preferred over COBALT_PARTNAME",
    { COBALT_NODEFILE: "/var/cobalt/nodes", COBALT_PARTNAME: "1-2" },
    { "/var/cobalt/nodes": "cc001\ncc002\ncc001\n" },
    "cobalt",
    ["cc001", "cc002"],
  ],
  [
    "PBS: PBS_NODEFILE, one line per core",
    { PBS_NODEFILE: "/var/spool/pbs/aux/123", LSB_HOSTS: "l1 l2" },
    { "/var/spool/pbs/aux/123": "x1000\nx1000\nx1001\nx1001\n" },
    "pbs",
    ["x1000", "x1001"],
  ],
  ["LSF: LSB_HOSTS without the launch node", { LSB_HOSTS: "batch3 a01n01 a01n01 a01n02" }, {}, "lsf", ["a01n01", "a01n02"]],
];

describe("discoverNodes", () => {
  for (const [what, env, files, scheduler, hosts] of hostCases) {
    test(what, () => {
      const found = discoverNodes(env, opts(files));
      assert.equal(found.scheduler, scheduler);
      assert.deepEqual(
        found.nodes.map((n) => n.host),
        hosts,
      );
    });
  }

  test("falls back to the local host", () => {
    assert.deepEqual(discoverNodes({}, opts()), {
      scheduler: "local",
      nodes: [{ host: "laptop", cores: 8, gpus: 0 }],
    });
  });

  test("Slurm: SLURM_JOB_NODELIST, with SLURM_CPUS_ON_NODE as cores", () => {
    const env = { SLURM_JOB_NODELIST: "nid[001-002]", SLURM_CPUS_ON_NODE: "128", BALSAM_CORES_PER_NODE: "4" };
    assert.deepEqual(discoverNodes(env, opts({}, { gpusPerNode: 4 })), {
      scheduler: "slurm",
      nodes: [
        { host: "nid001", cores: 128, gpus: 4 },
        { host: "nid002", cores: 128, gpus: 4 },
      ],
    });
  });

  test("Slurm beats Cobalt, PBS and LSF", () => {
    const env = { SLURM_JOB_NODELIST: "s1", COBALT_PARTNAME: "1", PBS_NODEFILE: "/pbs", LSB_HOSTS: "l1" };
    assert.equal(discoverNodes(env, opts({ "/pbs": "p1\n" })).scheduler, "slurm");
  });

  test("Cobalt: COBALT_PARTNAME gives numeric node ids", () => {
    const found = discoverNodes({ COBALT_PARTNAME: "3834-3835,3840", BALSAM_CORES_PER_NODE: "64" }, opts());
    assert.equal(found.scheduler, "cobalt");
    assert.deepEqual(found.nodes, [
      { host: "3834", cores: 64, gpus: 0 },
      { host: "3835", cores: 64, gpus: 0 },
      { host: "3840", cores: 64, gpus: 0 },
    ]);
  });

  test("Cobalt beats PBS", () => {
    const env = { COBALT_PARTNAME: "7", PBS_NODEFILE: "/pbs" };
    assert.equal(discoverNodes(env, opts({ "/pbs": "p1\n" })).scheduler, "cobalt");
  });

  test("BALSAM_CORES_PER_NODE applies to any scheduler when Slurm's is unset", () => {
    const found = discoverNodes({ LSB_HOSTS: "h1", BALSAM_CORES_PER_NODE: "42" }, opts());
    assert.deepEqual(found.nodes, [{ host: "h1", cores: 42, gpus: 0 }]);
  });

  test("an unreadable nodefile is a ConfigError naming the variable", () => {
    assert.throws(
      () => discoverNodes({ PBS_NODEFILE: "/missing" }, opts()),
      (err: unknown) => err instanceof ConfigError && /PBS_NODEFILE at \/missing/.test(err.message),
    );
  });

  test("a set variable that lists no hosts throws instead of running locally", () => {
    assert.throws(() => discoverNodes({ PBS_NODEFILE: "/empty" }, opts({ "/empty": "\n" })), /lists no hosts/);
    assert.throws(() => discoverNodes({ BALSAM_NODELIST: " , " }, opts()), /lists no hosts/);
  });

  test("bad core counts throw", () => {
    assert.throws(() => discoverNodes({ SLURM_CPUS_ON_NODE: "lots" }, opts()), /SLURM_CPUS_ON_NODE/);
    assert.throws(() => discoverNodes({ BALSAM_CORES_PER_NODE: "0" }, opts()), /BALSAM_CORES_PER_NODE/);
    assert.throws(() => discoverNodes({}, opts({}, { localCores: 0 })), /localCores/);
  });
});

describe("sliceNodes", () => {
  const nodes = ["n0", "n1", "n2", "n3"];

  test("no limit and no offset keeps everything", () => {
    assert.deepEqual(sliceNodes(nodes), nodes);
  });

  test("limit and offset pick a window", () => {
    assert.deepEqual(sliceNodes(nodes, 2), ["n0", "n1"]);
    assert.deepEqual(sliceNodes(nodes, 2, 1), ["n1", "n2"]);
    assert.deepEqual(sliceNodes(nodes, undefined, 3), ["n3"]);
  });

  test("a limit beyond the end is clamped", () => {
    assert.deepEqual(sliceNodes(nodes, 10, 2), ["n2", "n3"]);
  });

  test("an offset past the end throws a UsageError", () => {
    assert.throws(() => sliceNodes(nodes, 1, 4), (err: unknown) => {
      return err instanceof UsageError && /--offset-nodes 4 is past the end: the allocation has 4 node/.test(err.message);
    });
    assert.throws(() => sliceNodes([], undefined, 0), UsageError);
  });

  test("a limit below 1 or a bad offset throws", () => {
    assert.throws(() => sliceNodes(nodes, 0), /--limit-nodes must be a whole number >= 1, got 0/);
    assert.throws(() => sliceNodes(nodes, 1.5), /--limit-nodes/);
    assert.throws(() => sliceNodes(nodes, 1, -1), /--offset-nodes must be a whole number >= 0/);
  });
});

describe("remainingMinutesFromEnv", () => {
  const now = new Date("2024-05-01T12:00:00Z");
  const nowSec = now.getTime() / 1000;

  test("undefined when no end time is known", () => {
    assert.equal(remainingMinutesFromEnv({}, now), undefined);
  });

  test("Slurm's SLURM_JOB_END_TIME", () => {
    assert.equal(remainingMinutesFromEnv({ SLURM_JOB_END_TIME: String(nowSec + 3600) }, now), 60);
  });

  test("Cobalt's COBALT_ENDTIME, rounded down", () => {
    assert.equal(remainingMinutesFromEnv({ COBALT_ENDTIME: String(nowSec + 150) }, now), 2);
  });

  test("BALSAM_END_TIME overrides both; Slurm beats Cobalt", () => {
    const env = {
      BALSAM_END_TIME: String(nowSec + 600),
      SLURM_JOB_END_TIME: String(nowSec + 3600),
      COBALT_ENDTIME: String(nowSec + 7200),
    };
    assert.equal(remainingMinutesFromEnv(env, now), 10);
    assert.equal(remainingMinutesFromEnv({ ...env, BALSAM_END_TIME: "" }, now), 60);
  });

  test("past end times give 0, never negative", () => {
    assert.equal(remainingMinutesFromEnv({ SLURM_JOB_END_TIME: String(nowSec - 600) }, now), 0);
  });

  test("garbage is a ConfigError", () => {
    assert.throws(() => remainingMinutesFromEnv({ COBALT_ENDTIME: "tomorrow" }, now), ConfigError);
  });
});
