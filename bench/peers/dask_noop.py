"""Dask distributed on the bench's no-op jobs, as a new user would run it.

A LocalCluster of `workers` processes with one thread each; each task runs
/bin/true as a process. Timed from the first submit to the last result in
hand; the cluster's start-up and one warm-up task are left out.
Prints one JSON line: {"jobs", "seconds", "ok", "busyTicks", "allTicks"}:
the last two the whole machine's CPU time over the timed part (peers_stat.py).
"""
import json
import subprocess
import sys
import time

from peers_stat import machine_ticks

from dask.distributed import Client, LocalCluster


def run_true(_):
    return subprocess.run(["/bin/true"]).returncode


def main():
    n, workers = int(sys.argv[1]), int(sys.argv[2])
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        client.submit(run_true, -1, pure=False).result()
        c = machine_ticks()
        t = time.perf_counter()
        codes = client.gather(client.map(run_true, range(n), pure=False))
        s = time.perf_counter() - t
        busy, every = (a - b for a, b in zip(machine_ticks(), c))
    print(json.dumps({"jobs": n, "seconds": s, "ok": sum(1 for c in codes if c == 0), "busyTicks": busy, "allTicks": every}))


if __name__ == "__main__":
    main()
