import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { NodePool, demandOf, sameDemand, type Grant } from "../../services/launcher/pool.js";
import { gpuFitFilter } from "../../libs/store/index.js";

const four = { host: "n1", gpuIds: ["0", "1", "2", "3"] };

/** Resolves with the grant, or "waiting" when the pool has none for it now. */
async function now(p: Promise<Grant | null>): Promise<Grant | null | "waiting"> {
  return Promise.race([p, new Promise<"waiting">((r) => setImmediate(() => r("waiting")))]);
}

describe("NodePool: a node's CPU share and whole GPUs", () => {
  test("packing 8 on 4 GPUs: four 1-GPU jobs run, the fifth waits for a device, not for a CPU share", async () => {
    const pool = new NodePool([four], "serial");
    const d = demandOf({ nodePackingCount: 8, numNodes: 1, ranksPerNode: 1, gpusPerRank: 1 }, "serial");
    const grants = await Promise.all([0, 1, 2, 3].map(() => pool.acquire(d)));
    assert.deepEqual(grants.map((g) => g?.gpus), [[["0"]], [["1"]], [["2"]], [["3"]]]);
    const fifth = pool.acquire(d);
    assert.equal(await now(fifth), "waiting");
    // A CPU-only job still fits beside them: its share is free.
    const cpu = await now(pool.acquire(demandOf({ nodePackingCount: 8, numNodes: 1, ranksPerNode: 1 }, "serial")));
    assert.notEqual(cpu, "waiting");
    assert.deepEqual((cpu as Grant).gpus, [[]]);
    grants[2]!.release();
    assert.deepEqual((await fifth)?.gpus, [["2"]], "the freed device, and only it");
    pool.close();
  });

  test("busy while any grant is held, however many nodes; a grant released twice counts once", async () => {
    const pool = new NodePool([{ host: "n1", gpuIds: [] }, { host: "n2", gpuIds: [] }], "serial");
    const d = demandOf({ nodePackingCount: 4, numNodes: 1, ranksPerNode: 1 }, "serial");
    assert.equal(pool.busy(), false);
    const [a, b] = (await Promise.all([pool.acquire(d), pool.acquire(d)])) as Grant[];
    assert.equal(pool.busy(), true);
    a!.release();
    a!.release();
    assert.equal(pool.busy(), true, "the second grant is still held");
    b!.release();
    assert.equal(pool.busy(), false);
    pool.close();
  });

  test("a 2-GPU job gets two distinct free devices, the lowest first; released devices come back in order", async () => {
    const pool = new NodePool([four], "serial");
    const one = demandOf({ nodePackingCount: 8, numNodes: 1, ranksPerNode: 1, gpusPerRank: 1 }, "serial");
    const two = demandOf({ nodePackingCount: 8, numNodes: 1, ranksPerNode: 1, gpusPerRank: 2 }, "serial");
    const a = (await pool.acquire(one))!;
    const b = (await pool.acquire(two))!;
    assert.deepEqual([a.gpus, b.gpus], [[["0"]], [["1", "2"]]]);
    a.release();
    a.release(); // twice is once
    const c = (await pool.acquire(two))!;
    assert.deepEqual(c.gpus, [["0", "3"]]);
    pool.close();
  });

  test("the CPU share still counts: packing 2 holds two jobs on a 4-GPU node", async () => {
    const pool = new NodePool([four], "serial");
    const d = demandOf({ nodePackingCount: 2, numNodes: 1, ranksPerNode: 1, gpusPerRank: 1 }, "serial");
    await pool.acquire(d);
    await pool.acquire(d);
    assert.equal(await now(pool.acquire(d)), "waiting");
    pool.close();
  });

  test("mpi: whole nodes, and gpus_per_rank × ranks_per_node devices on each", async () => {
    const pool = new NodePool([four, { host: "n2", gpuIds: ["0", "1", "2", "3"] }], "mpi");
    const g = (await pool.acquire(demandOf({ nodePackingCount: 1, numNodes: 2, ranksPerNode: 2, gpusPerRank: 2 }, "mpi")))!;
    assert.deepEqual([g.hosts, g.gpus], [["n1", "n2"], [["0", "1", "2", "3"], ["0", "1", "2", "3"]]]);
    pool.close();
  });

  test("whyNever names what no node of the pool has", () => {
    const serial = new NodePool([four], "serial");
    assert.equal(serial.whyNever({ size: 0.5, gpus: 4 }), undefined);
    assert.equal(serial.whyNever({ size: 0.5, gpus: 5 }), "5 GPU(s) per node, this launcher's nodes have 4");
    assert.equal(new NodePool([{ host: "cpu", gpuIds: [] }], "serial").whyNever({ size: 1, gpus: 1 }), "1 GPU(s) per node, this launcher's nodes have none");
    assert.equal(new NodePool([four], "mpi").whyNever({ size: 2, gpus: 0 }), "2 nodes, this launcher has 1");
  });

  test("demands: serial share and GPUs per node; a document from before gpus_per_rank needs none", () => {
    assert.deepEqual(demandOf({ nodePackingCount: 4, numNodes: 1, ranksPerNode: 1 }, "serial"), { size: 0.25, gpus: 0 });
    assert.ok(sameDemand({ size: 1 / 3, gpus: 1 }, { size: 1 / 3, gpus: 1 }));
    assert.ok(!sameDemand({ size: 1 / 3, gpus: 1 }, { size: 1 / 3, gpus: 2 }));
  });

  test("the idle check's filter: gpus_per_rank × ranks_per_node ≤ the node's GPUs, one clause per count", () => {
    assert.deepEqual(gpuFitFilter(0), { $or: [{ gpusPerRank: { $exists: false } }, { gpusPerRank: { $lte: 0 } }] });
    assert.deepEqual(gpuFitFilter(4).$or, [
      { gpusPerRank: { $exists: false } },
      { gpusPerRank: { $lte: 0 } },
      { gpusPerRank: 1, ranksPerNode: { $lte: 4 } },
      { gpusPerRank: 2, ranksPerNode: { $lte: 2 } },
      { gpusPerRank: 3, ranksPerNode: { $lte: 1 } },
      { gpusPerRank: 4, ranksPerNode: { $lte: 1 } },
    ]);
  });
});

describe("NodePool: how long it stood empty with no job waiting", () => {
  test("free shares count only while nothing waits, from the first job asked for to the last done", async () => {
    let t = 0;
    const pool = new NodePool([{ host: "n1", gpuIds: [] }], "serial", () => t);
    const half = demandOf({ nodePackingCount: 2, numNodes: 1, ranksPerNode: 1 }, "serial");
    const whole = demandOf({ nodePackingCount: 1, numNodes: 1, ranksPerNode: 1 }, "serial");
    assert.equal(pool.emptyShare(), undefined, "nothing done yet");
    const a = (await pool.acquire(half))!; // t 0-10: half the node empty, nothing waiting
    t = 10;
    const b = (await pool.acquire(half))!; // 10-20: full
    t = 20;
    a.release(); // 20-30: half empty, but a whole-node job waits for it: not counted
    const c = pool.acquire(whole);
    t = 30;
    b.release(); // the waiter gets the whole node: 30-40 full
    const g = (await c)!;
    t = 40;
    g.release();
    // Empty with nothing waiting: 0.5 × 10 ms of 40 node-ms.
    assert.equal(pool.emptyShare(), 5 / 40);
    t = 100;
    assert.equal(pool.emptyShare(), 5 / 40, "idle after the last job is not counted");
    pool.close();
  });
});
