"""examples/polynome2/search.py, the AMBS search in Python, run as the seed runs it: a Balsam job adding its evaluations."""
from __future__ import annotations

import os
import unittest

from . import support

support.require_server()

import balsam  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(os.environ.get("BALSAM_TEST_BIN", "."))))
SEARCH = os.path.join(ROOT, "examples", "polynome2", "search.py")
RUN = os.path.join(ROOT, "dist", "examples", "polynome2", "run.js")


class SearchExampleTest(unittest.TestCase):
    def test_the_python_search_runs_its_evaluations_and_records_the_best(self) -> None:
        b = balsam.Balsam()
        wf = support.unique("ambs")
        search_app, run_app = support.unique("AMBS"), support.unique("polynome2.run")
        b.apps.add(search_app, f"{support.PYTHON} {SEARCH}")
        b.apps.add(run_app, f"{os.environ['BALSAM_TEST_NODE']} {RUN}")
        job = b.jobs.add(
            name="test", workflow=wf, application=search_app, node_packing_count=4,
            args=f"--evaluator balsam --problem polynome2.Problem --run {run_app} --max-evals 12 --in-flight 3",
        )
        out = support.Launcher(wf).wait(timeout=180)
        search = b.jobs.get(job.job_id)
        self.assertEqual(search.state, "JOB_FINISHED", f"{b.jobs.output(search)}\n{out}")
        tasks = list(b.jobs.filter(workflow=wf, name__contains="task"))
        self.assertEqual(sorted(t.name for t in tasks), sorted(f"task{i}" for i in range(12)))
        for t in tasks:
            self.assertEqual(t.state, "JOB_FINISHED")
            self.assertEqual(t.data.get("search"), search.job_id)
            self.assertEqual(t.node_packing_count, 4)
        best = max(tasks, key=lambda t: t.result)
        r = search.result
        self.assertEqual((r["evaluations"], r["objective"]), (12, best.result))
        self.assertEqual(r["objective"], -sum(v * v for v in r["config"].values()))


if __name__ == "__main__":
    unittest.main()
