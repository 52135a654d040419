"""0.5.0's ``balsam.launcher.dag`` inside running jobs (issue 22): a preprocess
editing its own job under its launcher's lease, and ``spawn_child`` with any
0.x field, its child's history naming who spawned it."""
from __future__ import annotations

import unittest

from . import support

support.require_server()


# make_sides_pre.py / reduce_pre.py / square_pre.py: a preprocess sets its own
# job's fields, numbers straight from sys.argv, and saves them.
EDITING_PRE = '''
import sys
import balsam.launcher.dag as dag

job = dag.current_job
job.args = "--edited " + sys.argv[1]
job.save()
job.environ_vars = f"COLOR=blue:SIDES={sys.argv[1]}"
job.num_nodes = "1"
job.ranks_per_node = "1"
job.threads_per_rank = sys.argv[2]
job.threads_per_core = "1"
job.mpi_flags = "--bind-to none"
job.save(update_fields=["environ_vars", "num_nodes", "ranks_per_node", "threads_per_rank", "threads_per_core", "mpi_flags"])
'''

SHOW_RUN = '''
import json, os, sys
print("BALSAM-RESULT: " + json.dumps({"args": sys.argv[1:], "color": os.environ.get("COLOR"), "sides": os.environ.get("SIDES")}))
'''

# make_sides_post.py's rescue: spawn_child(clone=True, ...) with 0.x fields its
# spawn_child set itself (state="CREATED"), and the plain and client forms.
SPAWNER = '''
import json, sys
import balsam
import balsam.launcher.dag as dag

me = dag.current_job
out = {}
if sys.argv[1:] == ["spawn"]:
    out["clone"] = dag.spawn_child(clone=True, application_args="cloned", state="CREATED", state_history="", lock="", tick=None, queued_launch=None).job_id
    out["plain"] = dag.spawn_child(name="plain", application=me.application, application_args="plain", state="CREATED").job_id
    out["client"] = balsam.Balsam().spawn_child(name="client", application_args="client").job_id
    try:
        dag.spawn_child(clone=True, job_id="ffffffff")
    except balsam.BadRequest as e:
        out["job_id"] = str(e)
print("BALSAM-RESULT: " + json.dumps(out))
'''


class ZeroXInJobTest(support.ClientTest):
    def test_a_preprocess_edits_its_own_job_under_the_lease(self) -> None:
        wf = support.unique("pre")
        app = support.unique("edited")
        pre = support.script(app + "_pre.py", EDITING_PRE, python=True)
        self.b.apps.add(app, support.script(app + ".py", SHOW_RUN, python=True), preprocess=f"{pre} 7 2")
        job = self.b.jobs.add(name="edited", workflow=wf, application=app, args="--original")
        out = support.Launcher(wf).wait(timeout=120)
        j = self.b.jobs.get(job.job_id)
        why = f"{j.state_history}\n--- job output ---\n{self.b.jobs.output(j)}\n--- launcher ---\n{out}"
        self.assertEqual(j.state, "JOB_FINISHED", why)
        self.assertEqual(j.args, "--edited 7")
        self.assertEqual(j.environ_vars, {"COLOR": "blue", "SIDES": "7"})
        raw = j.to_dict()
        self.assertEqual((raw["numNodes"], raw["ranksPerNode"], raw["threadsPerRank"], raw["threadsPerCore"], raw["mpiFlags"]), (1, 1, 2, 1, "--bind-to none"))
        # The launcher builds the run from the row the preprocess left.
        self.assertEqual(j.result, {"args": ["--edited", "7"], "color": "blue", "sides": "7"}, why)

    def test_spawn_child_takes_0x_fields_and_the_child_says_who_spawned_it(self) -> None:
        wf = support.unique("spawn")
        app = support.unique("spawner")
        self.b.apps.add(app, support.script(app + ".py", SPAWNER, python=True))
        spawner = self.b.jobs.add(name="spawner", workflow=wf, application=app, args="spawn", node_packing_count=2)
        out = support.Launcher(wf).wait(timeout=120)
        me = self.b.jobs.get(spawner.job_id)
        self.assertEqual(me.state, "JOB_FINISHED", f"{me.state_history}\n{self.b.jobs.output(me)}\n{out}")
        r = me.result
        self.assertIn("job field 'job_id' cannot be set here", r["job_id"])
        said = f"spawned by [spawner | {me.job_id[:8]}]"
        self.assertEqual(said, f"spawned by {me.cute_id}")
        for key, args in (("clone", "cloned"), ("plain", "plain"), ("client", "client")):
            child = self.b.jobs.get(r[key])
            first = child.state_history[0]
            self.assertEqual((first["state"], first["message"]), ("CREATED", said), key)
            self.assertIn(said, child.state_history)
            self.assertEqual((child.args, child.state), (args, "JOB_FINISHED"), f"{key}: {child.state_history}")
            self.assertIn(me.job_id, child.parents)
        self.assertEqual(self.b.jobs.get(r["clone"]).node_packing_count, 2, "a clone copies the spawner's fields")


if __name__ == "__main__":
    unittest.main()
