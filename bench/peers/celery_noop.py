"""Celery (Merlin's engine) on the bench's no-op jobs, as a new user would run it.

Redis as broker and result backend (BENCH_CELERY_REDIS), a prefork worker of
`workers` processes started here with Celery's defaults; each task runs
/bin/true as a process. Timed from the first submit to the last result in
hand; the worker's start-up and one warm-up task are left out.
Prints one JSON line: {"jobs", "seconds", "ok", "busyTicks", "allTicks"}:
the last two the whole machine's CPU time over the timed part (peers_stat.py).
"""
import json
import os
import subprocess
import sys
import time

from celery import Celery

from peers_stat import machine_ticks

app = Celery("celery_noop", broker=os.environ["BENCH_CELERY_REDIS"], backend=os.environ["BENCH_CELERY_REDIS"])


@app.task
def run_true():
    return subprocess.run(["/bin/true"]).returncode


def main():
    n, workers = int(sys.argv[1]), int(sys.argv[2])
    here = os.path.dirname(os.path.abspath(__file__))
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_noop", "worker", "--pool", "prefork", "--concurrency", str(workers), "--loglevel", "WARNING"],
        cwd=here,
        env={**os.environ, "PYTHONPATH": here},
    )
    try:
        deadline = time.time() + 60
        while not app.control.ping(timeout=0.5):
            if worker.poll() is not None or time.time() > deadline:
                raise SystemExit("the Celery worker did not start")
        run_true.delay().get(timeout=60)
        c = machine_ticks()
        t = time.perf_counter()
        pending = [run_true.delay() for _ in range(n)]
        codes = [r.get(timeout=600) for r in pending]
        s = time.perf_counter() - t
        busy, every = (a - b for a, b in zip(machine_ticks(), c))
    finally:
        worker.terminate()
        worker.wait()
    print(json.dumps({"jobs": n, "seconds": s, "ok": sum(1 for c in codes if c == 0), "busyTicks": busy, "allTicks": every}))


if __name__ == "__main__":
    main()
