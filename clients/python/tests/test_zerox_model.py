"""Balsam 0.x's model calls (``balsam.core.models.BalsamJob``) and ``dag.add_job``
as 0.5.0 scripts write them, against `balsam web` (issue 22)."""
from __future__ import annotations

import os
import re
import time
import unittest

from . import support

support.require_server()

import balsam  # noqa: E402
from balsam.launcher import dag  # noqa: E402
from balsam.launcher.dag import BalsamJob  # noqa: E402

NO_SUCH_ID = "ffffffff-0000-4000-8000-000000000000"


class ZeroXModelTest(support.NoopAppTest):
    def create(self, **fields):
        return BalsamJob.objects.create(**fields)

    def test_save_update_fields_saves_only_those(self) -> None:
        # make_sides_pre.py / reduce_pre.py: `job.save(update_fields=['environ_vars', 'ranks_per_node'])`.
        wf = support.unique("upd")
        job = self.add(name="j", workflow=wf, args="a", description="d")
        job.application_args = "b"
        job.environ_vars = "X=1:Y=2"
        job.description = "local only"
        job.save(update_fields=["application_args", "environ_vars"])
        stored = self.b.jobs.get(job.job_id)
        self.assertEqual((stored.args, stored.environ_vars, stored.description), ("b", {"X": "1", "Y": "2"}, "d"))
        self.assertEqual(job.description, "local only", "a field not named stays set here, unsaved, as on a Django instance")
        job.save()
        self.assertEqual(self.b.jobs.get(job.job_id).description, "local only")
        job.description = "not saved"
        self.assertIs(job.save(update_fields=[]), job)
        for bad, said in ((["nope"], "unknown job field 'nope'"), (["state"], "update_state"), ("args", "a list of field names")):
            with self.assertRaises(balsam.BadRequest) as e:
                job.save(update_fields=bad)
            self.assertIn(said, str(e.exception))
            self.assertIsNone(e.exception.status, "refused before anything was sent")
        with self.assertRaises(balsam.BadRequest):
            job.save(force_insert=True)
        with self.assertRaises(balsam.BadRequest):
            BalsamJob(name="new", workflow=wf, application=self.app).save(update_fields=["args"])
        self.assertEqual(self.b.jobs.get(job.job_id).description, "local only")
        job.save(using="default", force_update=True)
        self.assertEqual(self.b.jobs.get(job.job_id).description, "not saved")

    def test_numbers_and_flags_given_as_strings_are_converted_as_django_did(self) -> None:
        wf = support.unique("num")
        job = self.add(name="j", workflow=wf, num_nodes="2", wall_time_minutes="1.5", post_error_handler="True", wait_for_parents="f")
        raw = self.b.jobs.get(job.job_id).to_dict()
        self.assertEqual((raw["numNodes"], raw["wallTimeMinutes"], raw["postErrorHandler"], raw["waitForParents"]), (2, 1.5, True, False))
        job.ranks_per_node = "4"  # from sys.argv, as make_sides_pre.py
        job.threads_per_rank = 2.0
        job.auto_timeout_retry = 0
        job.save()
        raw = self.b.jobs.get(job.job_id).to_dict()
        self.assertEqual((raw["ranksPerNode"], raw["threadsPerRank"], raw["autoTimeoutRetry"]), (4, 2, False))
        self.assertEqual(self.b.jobs.filter(workflow=wf).update(node_packing_count="3"), 1)
        self.assertEqual(self.b.jobs.get(job.job_id).node_packing_count, 3)
        for field, value, said in (
            ("ranks_per_node", "two", "ranks_per_node must be a whole number, not 'two'"),
            ("num_nodes", 1.5, "num_nodes must be a whole number, not 1.5"),
            ("wall_time_minutes", "soon", "wall_time_minutes must be a number, not 'soon'"),
            ("post_error_handler", "yes", "post_error_handler must be True or False, not 'yes'"),
        ):
            with self.assertRaises(balsam.BadRequest) as e:
                setattr(job, field, value)
            self.assertEqual(str(e.exception), said)
        self.assertEqual(self.b.jobs.get(job.job_id).ranks_per_node, 4)

    def test_add_job_takes_0_5_0s_positional_arguments(self) -> None:
        wf = support.unique("pos")
        job = dag.add_job("n", wf, self.app)
        self.assertEqual((job.name, job.workflow, job.application, job.state), ("n", wf, self.app, "READY"))
        full = dag.add_job("m", wf, self.app, "a description", "--x 1", "", 1, "2", None, 1, 1, "A=1", {"k": 1})
        got = self.b.jobs.get(full.job_id)
        self.assertEqual((got.description, got.args, got.ranks_per_node, got.environ_vars, got.data), ("a description", "--x 1", 2, {"A": "1"}, {"k": 1}))
        later = dag.add_job("later", wf, self.app, save=False, input_files="in.dat")
        self.assertIsNone(later.job_id)
        self.assertEqual(self.b.jobs.filter(workflow=wf).count(), 2)
        later.save()
        self.assertEqual(self.b.jobs.get(later.job_id).input_files, "in.dat")

    def test_model_properties_and_lookups(self) -> None:
        wf = support.unique("props")
        parent = self.add(name="parent", workflow=wf, num_nodes=2, ranks_per_node=3)
        self.assertEqual(parent.cute_id, f"[parent | {parent.job_id[:8]}]")
        self.assertEqual(parent.num_ranks, 6)
        kids = [self.add(name=n, workflow=wf, parents=[parent]) for n in ("sum", "twin", "twin")]
        self.assertEqual(parent.get_child_by_name("sum").job_id, kids[0].job_id)
        self.assertEqual(sorted(parent.get_children_by_id()), sorted(k.job_id for k in kids))
        with self.assertRaises(ValueError) as none:
            parent.get_child_by_name("nobody")
        self.assertEqual(str(none.exception), "No child named nobody")
        self.assertIsInstance(none.exception, balsam.NotFound)
        with self.assertRaises(ValueError) as two:
            parent.get_child_by_name("twin")
        self.assertEqual(str(two.exception), "More than one child named twin")
        self.assertEqual(kids[0].get_parents_by_id(), [parent.job_id])

    def test_working_directory_is_known_before_the_run_and_is_the_launchers(self) -> None:
        wf = support.unique("wd")
        job = self.add(name="look here", workflow=wf)
        expect = os.path.join(os.environ["BALSAM_DB_PATH"], "data", wf, f"look_here_{job.job_id[:8]}")
        self.assertEqual(job.working_directory, expect)
        self.assertEqual(BalsamJob.objects.get(pk=job.job_id).working_directory, expect)
        with self.assertRaises(ValueError) as e:
            job.read_file_in_workdir("input.dat")
        self.assertEqual(str(e.exception), f"input.dat not found in working directory of {job.cute_id}")
        os.makedirs(expect)
        with open(os.path.join(expect, "input.dat"), "w", encoding="utf-8") as f:
            f.write("42\n")
        self.assertEqual(job.read_file_in_workdir("input.dat"), "42\n")
        support.Launcher(wf).wait(timeout=90)
        ran = self.b.jobs.get(job.job_id)
        self.assertEqual((ran.state, ran.workdir, ran.working_directory), ("JOB_FINISHED", expect, expect))
        self.assertIn("noop", ran.read_file_in_workdir("look_here.out"))

    def test_state_history_reads_as_0x_text_and_as_a_list(self) -> None:
        wf = support.unique("hist")
        job = self.add(name="h", workflow=wf)
        job.update_state("FAILED", "given up")
        h = self.b.jobs.get(job.job_id).state_history
        self.assertIn("FAILED", h)
        self.assertIn("given up", h)
        self.assertNotIn("RUN_ERROR", h)
        self.assertEqual([e["state"] for e in h], ["CREATED", "READY", "FAILED"])
        self.assertEqual(h[-1]["message"], "given up")
        text = str(h)
        lines = text.split("\n")
        # history_line() right-aligns "\n[<26-character time> CREATED] " to 46: 8 spaces, before the newline.
        self.assertEqual(lines[0], " " * 8, text)
        line = re.compile(r"^ *\[(\d\d-\d\d-\d{4} \d\d:\d\d:\d\d\.\d{6}) ([A-Z_]+)\] (.*)$")
        self.assertEqual([line.match(x).group(2) for x in lines[1:]], ["CREATED", "READY", "FAILED"], text)
        self.assertTrue(lines[-1].endswith("FAILED] given up"), text)
        self.assertEqual(h.count("READY"), 1)
        self.assertEqual(h.splitlines()[-1].strip(), job.refresh_from_db().get_recent_state_str())
        self.assertEqual(job.get_recent_state_str(), lines[-1].strip())
        self.assertEqual(set(job.get_state_times()), {"CREATED", "READY", "FAILED"})

    def test_set_parents_replaces_them_and_moves_a_job_not_started(self) -> None:
        wf, other = support.unique("setp"), support.unique("held")
        done = self.add(name="done", workflow=wf)
        support.Launcher(wf).wait(timeout=90)
        self.assertEqual(self.b.jobs.get(done.job_id).state, "JOB_FINISHED")
        pending = self.add(name="pending", workflow=other)  # never run here: stays READY
        waiting = self.add(name="waiting", workflow=wf, parents=[pending])
        # In the other workflow: a launcher of `wf` would not stop while a job of it waits on a parent that could still finish.
        ready = self.add(name="ready", workflow=other)
        self.assertIs(ready.set_parents([pending]), ready)
        self.assertEqual((ready.state, ready.parents), ("AWAITING_PARENTS", [pending.job_id]))
        self.assertEqual(waiting.set_parents([done.job_id[:13]]).state, "READY", "its new parents have all finished")
        self.assertEqual(self.b.jobs.get(waiting.job_id).parents, [done.job_id])
        orphan = self.add(name="orphan", workflow=wf, parents=[pending])
        orphan.set_parents([])
        self.assertEqual((orphan.state, orphan.parents), ("READY", []))
        # Both now queued: a launcher runs them; the one waiting on `pending` stays.
        support.Launcher(wf).wait(timeout=90)
        states = {j.name: j.state for j in self.b.jobs.filter(workflow=wf)}
        self.assertEqual(states, {"done": "JOB_FINISHED", "waiting": "JOB_FINISHED", "orphan": "JOB_FINISHED"})
        self.assertEqual(self.b.jobs.get(ready.job_id).state, "AWAITING_PARENTS")
        self.assertIn("parents set to", self.b.jobs.get(waiting.job_id).state_history)
        # Bad input: a clear error, nothing changed.
        for parents, kind, said in (
            ([NO_SUCH_ID], balsam.NotFound, NO_SUCH_ID),
            ([ready], balsam.Conflict, "its own parent"),
            ("abc", balsam.BadRequest, "a list of jobs or ids"),
        ):
            with self.assertRaises(kind) as e:
                ready.set_parents(parents)
            self.assertIn(said, str(e.exception))
        with self.assertRaises(balsam.Conflict) as cyc:
            pending.set_parents([ready])
        self.assertIn("cycle", str(cyc.exception))
        self.assertEqual(self.b.jobs.get(ready.job_id).parents, [pending.job_id])
        self.assertEqual(self.b.jobs.get(pending.job_id).parents, [])
        # A parent that was killed fails a waiting child, as 0.x's parent check did.
        killed = self.add(name="killed", workflow=other)
        self.b.jobs.kill(killed.job_id)
        self.assertEqual(ready.set_parents([killed]).state, "FAILED")
        # A final job keeps its state (0.x only saved the field): a rerun waits for them.
        finished = self.b.jobs.get(done.job_id)
        self.assertEqual(finished.set_parents([pending]).state, "JOB_FINISHED")
        self.assertEqual(self.b.jobs.get(done.job_id).parents, [pending.job_id])

    def test_set_parents_of_a_running_job_is_refused(self) -> None:
        wf = support.unique("runp")
        app = support.unique("sleeper")
        self.b.apps.add(app, support.script(app, "sleep 60\n"))
        other = self.add(name="other", workflow=support.unique("idle"))
        job = self.add(name="slow", workflow=wf, application=app)
        launcher = support.Launcher(wf)
        try:
            deadline = time.monotonic() + 60
            while job.refresh_from_db().state != "RUNNING" and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertEqual(job.state, "RUNNING")
            with self.assertRaises(balsam.Conflict) as e:
                job.set_parents([other])
            self.assertIn("held by launcher", str(e.exception))
            self.assertEqual(self.b.jobs.get(job.job_id).parents, [])
            self.b.jobs.kill(job.job_id)
            launcher.wait(timeout=60)
        finally:
            launcher.stop()


if __name__ == "__main__":
    unittest.main()
