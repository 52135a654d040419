import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { ServicePolicySchema, type ServicePolicy } from "../../libs/config/index.js";
import { decideLaunch, type WorkBucket } from "../../services/service/policy.js";

function policy(over: Partial<ServicePolicy> = {}): ServicePolicy {
  return { ...ServicePolicySchema.parse({}), maxNodes: 8, maxQueuedLaunches: 2, ...over };
}

const serial = (count: number, packing = 1): WorkBucket => ({ numNodes: 1, nodePackingCount: packing, count });
const mpi = (count: number, numNodes: number): WorkBucket => ({ numNodes, nodePackingCount: 1, count });

describe("decideLaunch", () => {
  test("serial jobs are sized by packing", () => {
    const d = decideLaunch({ policy: policy(), runnable: [serial(20, 8)], tooLong: 0, inFlight: [] });
    assert.deepEqual(d.submit && d.nodes, 3);
  });
  test("serial GPU jobs are sized by their GPUs when those bind first (gpusPerNode known)", () => {
    // 16 one-GPU jobs packed 8 a node on 4-GPU nodes: 4 a node, so 4 nodes, not 2.
    const gpu = { ...serial(16, 8), gpusPerRank: 1 };
    const only = decideLaunch({ policy: policy(), runnable: [gpu], tooLong: 0, inFlight: [], gpusPerNode: 4 });
    assert.equal(only.submit && only.nodes, 4);
    const d = decideLaunch({ policy: policy(), runnable: [gpu, serial(8, 8)], tooLong: 0, inFlight: [], gpusPerNode: 4 });
    assert.equal(d.submit && d.nodes, 5);
    const unknown = decideLaunch({ policy: policy(), runnable: [gpu], tooLong: 0, inFlight: [] });
    assert.equal(unknown.submit && unknown.nodes, 2, "without gpusPerNode only CPU shares count");
  });
  test("capped at maxNodes", () => {
    const d = decideLaunch({ policy: policy(), runnable: [serial(1000)], tooLong: 0, inFlight: [] });
    assert.equal(d.submit && d.nodes, 8);
  });
  test("queued allocations count against the work; running ones do not", () => {
    const work = [serial(6)];
    const q = decideLaunch({ policy: policy(), runnable: work, tooLong: 0, inFlight: [{ state: "queued", nodes: 4 }] });
    assert.equal(q.submit && q.nodes, 2);
    const r = decideLaunch({ policy: policy(), runnable: work, tooLong: 0, inFlight: [{ state: "running", nodes: 4 }] });
    assert.equal(r.submit && r.nodes, 6);
    const covered = decideLaunch({ policy: policy(), runnable: work, tooLong: 0, inFlight: [{ state: "queued", nodes: 6 }] });
    assert.equal(covered.submit, false);
    assert.match(covered.reason, /already queued: 6/);
  });
  test("no more than maxQueuedLaunches in flight", () => {
    const d = decideLaunch({ policy: policy({ maxQueuedLaunches: 1 }), runnable: [serial(5)], tooLong: 0, inFlight: [{ state: "running", nodes: 1 }] });
    assert.equal(d.submit, false);
    assert.match(d.reason, /maxQueuedLaunches 1/);
  });
  test("minRunnableJobs, and nothing to run", () => {
    assert.equal(decideLaunch({ policy: policy({ minRunnableJobs: 10 }), runnable: [serial(9)], tooLong: 0, inFlight: [] }).submit, false);
    const none = decideLaunch({ policy: policy(), runnable: [], tooLong: 0, inFlight: [] });
    assert.equal(none.submit, false);
    assert.match(none.reason, /0 runnable job/);
  });
  test("mpi: nodes of every job, at least the largest", () => {
    const p = policy({ jobMode: "mpi", maxNodes: 16 });
    const d = decideLaunch({ policy: p, runnable: [mpi(2, 4), mpi(1, 1)], tooLong: 0, inFlight: [] });
    assert.equal(d.submit && d.nodes, 9);
    const big = decideLaunch({ policy: p, runnable: [mpi(1, 8)], tooLong: 0, inFlight: [{ state: "queued", nodes: 4 }] });
    assert.equal(big.submit && big.nodes, 8);
  });
  test("jobs the policy can never run are said, not launched for", () => {
    const d = decideLaunch({ policy: policy(), runnable: [mpi(3, 2)], tooLong: 2, inFlight: [] });
    assert.equal(d.submit, false);
    assert.match(d.reason, /3 runnable MPI job\(s\) need an mpi-mode policy/);
    assert.match(d.reason, /2 runnable job\(s\) need more than the policy's 30 min/);
    const tooBig = decideLaunch({ policy: policy({ jobMode: "mpi", maxNodes: 2 }), runnable: [mpi(1, 4)], tooLong: 0, inFlight: [] });
    assert.equal(tooBig.submit, false);
    assert.match(tooBig.reason, /need more than maxNodes 2/);
  });
  test("autoSubmit off", () => {
    assert.equal(decideLaunch({ policy: policy({ autoSubmit: false }), runnable: [serial(5)], tooLong: 0, inFlight: [] }).submit, false);
  });
});
