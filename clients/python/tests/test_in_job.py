"""The client inside running jobs: current_job(), spawn_child(), and 0.x postprocess scripts."""
from __future__ import annotations

import json
import unittest

from . import support

support.require_server()


SPAWNER = '''
import json, sys
import balsam
from balsam.launcher import dag

b = balsam.Balsam()
me = b.current_job()
out = {
    "me": me.job_id, "args": sys.argv[1:], "dag_me": dag.current_job.job_id,
    "dag_parents": [p.job_id for p in dag.parents], "module_me": balsam.current_job().job_id,
    "state": me.state, "dag_state": dag.current_job.state,
}
if sys.argv[1:] == ["parent"]:
    out["child"] = b.spawn_child(name=me.name + "-child", application_args="child").job_id
    out["dag_child"] = dag.spawn_child(name=me.name + "-dagchild", application=me.application, application_args="dagchild").job_id
    out["dag_children"] = sorted(c.job_id for c in dag.current_job.get_children())
print("BALSAM-RESULT: " + json.dumps(out))
'''

# 0.x's postprocess idiom: the script judges the output and sets its own job's state.
CHECK_CONVERGED = '''
import balsam.launcher.dag as dag

job = dag.current_job
output = open(job.name + ".out").read()
if "CONVERGED" not in output:
    job.update_state("FAILED", "postprocess: the output did not converge")
    # The state set, the launcher has let go of the job: the script may note why.
    job.data["checked"] = True
    job.save()
'''

# 0.x's error handler idiom: a rescue action, then run again.
RESCUE = '''
import balsam.launcher.dag as dag

# The postprocess runs after every run; as the error handler only after a failed one.
if dag.ERROR:
    open("fixed", "w").close()
    dag.current_job.update_state("RESTART_READY", "rescued by the error handler")
'''


HELD = "is held by launcher"


def held_note(output: str) -> str:
    """Says plainly when the script's write was refused because its own launcher holds the job."""
    if HELD not in output:
        return ""
    return ("\nthe server refused the script's write with 409 'held by launcher': a job's own pre/postprocess "
            "script counts as its launcher (DESIGN.md invariant 3); the launcher hands it BALSAM_JOB_LEASE, the "
            "client sends it as X-Balsam-Lease, and `balsam web` must pass it to jobs.setState(id, state, message, "
            "{ lease })\n")


class InJobTest(support.ClientTest):
    def test_current_job_and_spawn_child_from_a_running_job(self) -> None:
        wf = support.unique("spawn")
        noop = support.unique("noop")
        self.b.apps.add(noop, support.script(noop, "echo root\n"))
        app = support.unique("spawner")
        self.b.apps.add(app, support.script(app + ".py", SPAWNER, python=True))
        root = self.b.jobs.add(name="root", workflow=wf, application=noop)
        spawner = self.b.jobs.add(
            name="spawner", workflow=wf, application=app, args="parent", parents=[root],
            node_packing_count=2, environ_vars={"X": "1"}, data={"k": 1}, wall_time_minutes=3,
        )
        out = support.Launcher(wf).wait(timeout=120)
        me = self.b.jobs.get(spawner.job_id)
        self.assertEqual(me.state, "JOB_FINISHED", out)
        r = me.result
        self.assertEqual((r["me"], r["dag_me"], r["module_me"]), (me.job_id,) * 3)
        self.assertEqual(r["dag_parents"], [root.job_id])
        # Even when the launcher started it ahead of recording its claim.
        self.assertEqual((r["state"], r["dag_state"]), ("RUNNING", "RUNNING"))
        child = self.b.jobs.get(r["child"])
        # 0.x's clone: the current job's fields, the overrides, its parents plus itself.
        self.assertEqual(child.parents, [root.job_id, me.job_id])
        self.assertEqual((child.name, child.args, child.application, child.workflow), ("spawner-child", "child", app, wf))
        self.assertEqual((child.node_packing_count, child.environ_vars, child.wall_time_minutes), (2, {"X": "1"}, 3))
        self.assertEqual(child.data.get("k"), 1)
        dag_child = self.b.jobs.get(r["dag_child"])
        self.assertEqual(dag_child.parents, [me.job_id])
        self.assertEqual(dag_child.node_packing_count, 1, "spawn_child(clone=False) copies nothing")
        self.assertEqual(sorted(r["dag_children"]), sorted([child.job_id, dag_child.job_id]))
        # The children ran after their parent, and knew who they were.
        for c in (child, dag_child):
            self.assertEqual(c.state, "JOB_FINISHED", f"{c.name}: {c.state_history}\n{out}")
            self.assertEqual(c.result["me"], c.job_id)
        self.assertEqual(child.result["dag_parents"], [root.job_id, me.job_id])

    def test_current_job_outside_a_job_is_a_clear_error(self) -> None:
        r = support.run_python("import balsam; balsam.current_job()")
        self.assertIn("BALSAM_JOB_ID is not set: this is not running inside a Balsam job", r.stderr)
        r2 = support.run_python("from balsam.launcher import dag; assert dag.current_job is None; dag.spawn_child(name='x')")
        self.assertIn("RuntimeError: No current BalsamJob detected in environment", r2.stderr)

    def test_a_0x_postprocess_script_in_python_sets_its_jobs_state(self) -> None:
        wf = support.unique("post")
        app = support.unique("sim")
        post = support.script(app + "_post.py", CHECK_CONVERGED, python=True)
        self.b.apps.add(app, support.script(app, 'echo "iteration 100: residual 3.2"\n'), postprocess=post)
        job = self.b.jobs.add(name="sim", workflow=wf, application=app)
        out = support.Launcher(wf).wait(timeout=90)
        j = self.b.jobs.get(job.job_id)
        text = self.b.jobs.output(j)
        why = f"{held_note(text)}{j.state_history}\n--- job output ---\n{text}\n--- launcher ---\n{out}"
        self.assertEqual(j.state, "FAILED", why)
        self.assertEqual(j.state_history[-1]["message"], "postprocess: the output did not converge", why)
        self.assertIs(j.data.get("checked"), True)

    def test_a_0x_error_handler_in_python_rescues_its_job(self) -> None:
        wf = support.unique("rescue")
        app = support.unique("fragile")
        post = support.script(app + "_rescue.py", RESCUE, python=True)
        self.b.apps.add(app, support.script(app, 'if [ -e fixed ]; then echo "DH-OUTPUT: 1"; else echo broken; exit 3; fi\n'), postprocess=post)
        job = self.b.jobs.add(name="fragile", workflow=wf, application=app, post_error_handler=True)
        try:
            out = support.Launcher(wf).wait(timeout=90)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- the job ---\n{self.b.jobs.get(job.job_id).to_dict()}") from None
        j = self.b.jobs.get(job.job_id)
        states = [h["state"] for h in j.state_history]
        text = self.b.jobs.output(j)
        why = f"{held_note(text)}{j.state_history}\n--- job output ---\n{text}\n--- launcher ---\n{out}"
        self.assertEqual(j.state, "JOB_FINISHED", why)
        self.assertIn("RESTART_READY", states)
        self.assertIn("rescued by the error handler", [h["message"] for h in j.state_history])
        self.assertEqual(j.result, 1)


if __name__ == "__main__":
    unittest.main()
