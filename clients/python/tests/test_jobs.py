"""Adding, selecting, changing and deleting jobs through `balsam web`, and the errors it answers."""
from __future__ import annotations

import os
import subprocess
import unittest

from . import support

support.require_server()

import balsam  # noqa: E402
from balsam.launcher.dag import BalsamJob  # noqa: E402

SEED_SCRIPT = '''import sys
from balsam.launcher.dag import BalsamJob

BalsamJob.objects.filter(name__contains=sys.argv[2], workflow=sys.argv[1]).delete()
'''


class JobsTest(support.NoopAppTest):

    def test_seed_script_deletes_task_jobs_of_its_workflow_only(self) -> None:
        # The seed's "script_with_django_model.py", verbatim, run as the seed runs it.
        for i in range(3):
            self.add(name=f"task{i}", workflow="TEST")
        self.add(name="test", workflow="TEST", args="--evaluator balsam --problem polynome2.Problem --run polynome2.run")
        self.add(name="task_other", workflow="OTHER_SEED")
        path = support.script("script_with_django_model.py", SEED_SCRIPT, python=True)
        r = support.run_python(path, "TEST", "task")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([j.name for j in self.b.jobs.filter(workflow="TEST")], ["test"])
        self.assertEqual(self.b.jobs.filter(workflow="OTHER_SEED").count(), 1)
        # And from this process: Django's answer shape.
        self.assertEqual(BalsamJob.objects.filter(name__contains="test", workflow="TEST").delete(), (1, {"BalsamJob": 1}))
        self.assertEqual(self.b.jobs.filter(workflow="TEST").count(), 0)

    def test_add_maps_0x_field_names(self) -> None:
        wf = support.unique("wf")
        j = self.add(
            name="fields", workflow=wf, application_args="--x 1", num_nodes=2, ranks_per_node=4, threads_per_rank=2,
            environ_vars="A=1:PATH=/a:/b", wall_time_minutes=7, node_packing_count=3, post_error_handler=True,
            auto_timeout_retry=False, fast_fail_retries=0, data={"k": [1, 2]}, description="d", gpus_per_rank="2",
        )
        got = self.b.jobs.get(j.job_id)
        raw = got.to_dict()
        self.assertEqual(raw["args"], "--x 1")
        self.assertEqual(got.application_args, "--x 1")
        self.assertEqual((raw["numNodes"], raw["ranksPerNode"], raw["threadsPerRank"]), (2, 4, 2))
        self.assertEqual(raw["environVars"], {"A": "1", "PATH": "/a:/b"})
        self.assertEqual((got.wall_time_minutes, got.node_packing_count), (7, 3))
        self.assertIs(got.post_error_handler, True)
        self.assertIs(got.auto_timeout_retry, False)
        self.assertEqual(raw["fastFailRetries"], 0)
        self.assertEqual((raw["gpusPerRank"], got.gpus_per_rank), (2, 2), "Balsam 2's gpus_per_rank, a count as 0.x counts were")
        self.assertEqual(got.data, {"k": [1, 2]})
        self.assertEqual(got.state, "READY")
        self.assertEqual(got.created_at.tzinfo is not None, True)

    def test_add_many_filter_count_iterate_update(self) -> None:
        wf = support.unique("wf")
        jobs = self.b.jobs.add_many([{"name": f"task{i}", "workflow": wf, "application": self.app, "num_nodes": 1 + i % 2} for i in range(12)])
        self.assertEqual(len(jobs), 12)
        self.add(name="search", workflow=wf)
        q = self.b.jobs.filter(workflow=wf, name__contains="task")
        self.assertEqual(q.count(), 12)
        self.assertEqual(sorted(j.name for j in q), sorted(f"task{i}" for i in range(12)))
        # Lookups the API has no selector for are checked on what it sends.
        self.assertEqual([j.name for j in self.b.jobs.filter(workflow=wf, name="task1")], ["task1"])
        self.assertEqual(self.b.jobs.filter(workflow=wf, num_nodes__gt=1).count(), 6)
        self.assertEqual(self.b.jobs.filter(workflow=wf).exclude(name__startswith="task").count(), 1)
        self.assertEqual(self.b.jobs.filter(workflow=wf, state__in=["READY", "RUNNING"]).count(), 13)
        self.assertEqual(self.b.jobs.filter(workflow=wf, state="JOB_FINISHED").count(), 0)
        self.assertEqual(self.b.jobs.filter(workflow=wf).by_state(), {"READY": 13})
        self.assertEqual(q.update(wall_time_minutes=9), 12)
        self.assertEqual({j.wall_time_minutes for j in q}, {9})
        self.assertEqual(self.b.jobs.filter(workflow=wf, name="search").first().wall_time_minutes, 1)
        self.assertEqual(self.b.jobs.filter(workflow=wf, name="task3").update(description="three"), 1)
        self.assertEqual(self.b.jobs.filter(workflow=wf, description="three").count(), 1)
        # save() sends what changed, including in-place changes to data.
        j = self.b.jobs.get(jobs[0].job_id)
        j.data["tag"] = "x"
        j.num_nodes = 4
        j.save()
        again = self.b.jobs.get(jobs[0].job_id)
        self.assertEqual((again.data.get("tag"), again.num_nodes), ("x", 4))
        self.assertEqual(q.delete(), 12)
        self.assertEqual(self.b.jobs.filter(workflow=wf).count(), 1)
        # A state goes through the transition table, job by job, with its message.
        self.assertEqual(self.b.jobs.filter(workflow=wf, name="search").update(state="FAILED", message="given up"), 1)
        last = self.b.jobs.filter(workflow=wf).first().state_history[-1]
        self.assertEqual((last["state"], last["message"]), ("FAILED", "given up"))

    def test_get_by_prefix_kill_recursive_and_dependencies(self) -> None:
        wf = support.unique("wf")
        parent = self.add(name="parent", workflow=wf)
        child = self.add(name="child", workflow=wf, parents=[parent])
        grandchild = self.add(name="grandchild", workflow=wf)
        BalsamJob.objects.get(pk=grandchild.job_id)  # 0.x's get(pk=...)
        from balsam.launcher import dag

        dag.add_dependency(child, grandchild)
        self.assertEqual(self.b.jobs.get(grandchild.job_id[:13]).parents, [child.job_id])
        self.assertEqual([j.name for j in self.b.jobs.get(parent.job_id).get_children()], ["child"])
        with self.assertRaises(balsam.BalsamError) as cyc:
            dag.add_dependency(grandchild, parent)
        self.assertIn("cycle", str(cyc.exception).lower())
        killed = self.b.jobs.kill(parent.job_id, recursive=True)
        self.assertEqual(sorted(killed), sorted([parent.job_id, child.job_id, grandchild.job_id]))
        self.assertEqual({j.state for j in self.b.jobs.filter(workflow=wf)}, {"USER_KILLED"})
        # Final already: wait() answers at once.
        self.assertEqual(sorted(r.id for r in self.b.wait(killed, timeout=10)), sorted(killed))
        # No time to wait at all: the jobs already final still come.
        self.assertEqual(sorted(r.id for r in self.b.results(killed, timeout=0)), sorted(killed))

    def test_contains_and_startswith_are_djangos_not_the_servers(self) -> None:
        wf = support.unique("wf")
        a = self.add(name="Task_A", workflow=wf)
        b = self.add(name="task_b", workflow=wf)
        # Django's contains is case-sensitive; the server's name selector is not (icontains).
        self.assertEqual([j.name for j in BalsamJob.objects.filter(workflow=wf, name__contains="task")], ["task_b"])
        self.assertEqual(sorted(j.name for j in BalsamJob.objects.filter(workflow=wf, name__icontains="task")), ["Task_A", "task_b"])
        # A prefix is a prefix: a part from the middle of an id (the server's id selector) is not.
        mid = a.job_id[9:13]
        self.assertEqual([j.job_id for j in BalsamJob.objects.filter(workflow=wf, job_id__startswith=mid)], [j.job_id for j in (a, b) if j.job_id.startswith(mid)])
        self.assertEqual([j.job_id for j in BalsamJob.objects.filter(workflow=wf, job_id__startswith=a.job_id[:8])], [a.job_id])
        BalsamJob.objects.filter(workflow=wf, name__contains="task").delete()
        self.assertEqual([j.name for j in self.b.jobs.filter(workflow=wf)], ["Task_A"], "the other case is left")

    def test_a_loop_that_changes_the_jobs_it_reads_sees_each_once(self) -> None:
        # Pages are offsets into an unsorted list: killing the jobs of page 1 would shift page 2 past 10 of them.
        from balsam import query

        wf = support.unique("wf")
        self.b.jobs.add_many([{"name": f"p{i}", "workflow": wf, "application": self.app} for i in range(25)])
        saved = query.PAGE
        query.PAGE = 10
        try:
            seen = []
            for j in self.b.jobs.filter(workflow=wf, state="READY"):
                self.b.jobs.kill(j.job_id)
                seen.append(j.name)
        finally:
            query.PAGE = saved
        self.assertEqual(sorted(seen), sorted(f"p{i}" for i in range(25)))
        self.assertEqual(self.b.jobs.filter(workflow=wf, state="USER_KILLED").count(), 25)

    def test_0x_model_calls_outside_a_job(self) -> None:
        from balsam.launcher import dag

        wf = support.unique("wf")
        self.assertIsNone(dag.current_job)
        j = BalsamJob(name="made", workflow=wf, application=self.app, num_nodes=2)
        self.assertIsNone(j.job_id)
        j.save()
        self.assertIsNotNone(j.job_id)
        self.assertEqual(BalsamJob.objects.get(name="made", workflow=wf).num_nodes, 2)
        added = dag.add_job(name="added", workflow=wf, application=self.app, environ_vars="A=1")
        self.assertIsInstance(added, BalsamJob)
        self.assertEqual(added.environ_vars, {"A": "1"})
        dag.add_dependency(j, added)
        with self.assertRaises(balsam.Conflict):
            dag.add_dependency(j.job_id, added.job_id)
        self.assertEqual([c.name for c in j.get_children()], ["added"])
        self.assertEqual([p.name for p in BalsamJob.objects.get(pk=added.pk).get_parents()], ["made"])
        self.assertEqual(sorted(dag.kill(j)), sorted([j.job_id, added.job_id]))
        self.assertEqual(BalsamJob.objects.filter(workflow=wf, state="USER_KILLED").count(), 2)
        with self.assertRaises(balsam.NotFound):
            BalsamJob.objects.get(name="nobody", workflow=wf)
        self.assertEqual(len(BalsamJob.objects.filter(workflow=wf)), 2)

    def test_ambiguous_prefix_is_a_conflict_listing_candidates(self) -> None:
        wf = support.unique("wf")
        ids = [j.job_id for j in self.b.jobs.add_many([{"name": f"p{i}", "workflow": wf, "application": self.app} for i in range(40)])]
        firsts = [i[0] for i in ids]
        prefix = max(set(firsts), key=firsts.count)  # 40 ids over 16 digits: some digit repeats
        with self.assertRaises(balsam.Conflict) as e:
            self.b.jobs.get(prefix)
        self.assertEqual(e.exception.status, 409)
        self.assertNotIn("\n", str(e.exception))

    def test_bad_input_raises_the_servers_message_and_changes_nothing(self) -> None:
        wf = support.unique("wf")
        with self.assertRaises(balsam.BalsamError) as e:
            self.b.jobs.add(name="x", workflow=wf, application="no_such_app_py")
        msg = str(e.exception)
        self.assertIn("no_such_app_py", msg)
        self.assertNotIn("\n", msg)
        self.assertNotRegex(msg, r"at .*\.(js|ts):\d+|Traceback")
        self.assertIsNotNone(e.exception.status)
        with self.assertRaises(balsam.BadRequest) as e2:
            self.b.jobs.add_many([{"name": "ok", "workflow": wf, "application": self.app}, {"name": "bad", "workflow": wf, "application": self.app, "num_nodes": "many"}])
        self.assertEqual(str(e2.exception), "num_nodes must be a whole number, not 'many'")
        with self.assertRaises(balsam.BadRequest) as e2b:
            self.b.jobs.add_many([{"name": "ok", "workflow": wf, "application": self.app}, {"name": "bad", "workflow": wf, "application": self.app, "num_nodes": 0}])
        self.assertEqual(e2b.exception.status, 400)
        with self.assertRaises(balsam.BadRequest) as e2c:
            self.b.jobs.add(name="gpus", workflow=wf, application=self.app, gpus_per_rank=-1)
        self.assertEqual(e2c.exception.status, 400)
        self.assertEqual(self.b.jobs.filter(workflow=wf).count(), 0, "a refused bulk adds nothing")
        with self.assertRaises(balsam.NotFound) as e3:
            self.b.jobs.get("ffffffff-ffff-ffff-ffff-ffffffffffff")
        self.assertIn("ffffffff", str(e3.exception))
        with self.assertRaises(balsam.BadRequest) as e4:
            self.b.jobs.add(name="x", workflow=wf, application=self.app, nodes_number=3)
        self.assertEqual(e4.exception.status, None, "refused before anything was sent")
        self.assertIn("nodes_number", str(e4.exception))
        # Python's json writes NaN and Infinity, which are not JSON: the server could only say the body did not parse.
        with self.assertRaises(balsam.BadRequest) as e6:
            self.b.jobs.add(name="nan", workflow=wf, application=self.app, data={"loss": float("nan")})
        self.assertEqual(str(e6.exception), 'data.loss is NaN, which a job cannot hold; use None or the string "NaN"')
        self.assertEqual(e6.exception.status, None, "refused before anything was sent")
        with self.assertRaises(balsam.BadRequest) as e7:
            self.b.jobs.add_many([{"name": "ok", "workflow": wf, "application": self.app}, {"name": "inf", "workflow": wf, "application": self.app, "data": {"runs": [1.0, float("-inf")]}}])
        self.assertEqual(str(e7.exception), 'jobs[1].data.runs[1] is -inf, which a job cannot hold; use None or the string "-inf"')
        self.assertEqual(self.b.jobs.filter(workflow=wf).count(), 0, "a refused bulk adds nothing")
        with self.assertRaises(balsam.BadRequest):
            self.b.jobs.filter(workflow=wf, state="DONE")
        j = self.add(name="ok", workflow=wf)
        with self.assertRaises((balsam.BadRequest, balsam.Conflict)) as e5:
            j.update_state("RUN_DONE", "not a transition from READY")
        self.assertIn("RUN_DONE", str(e5.exception))
        self.assertEqual(self.b.jobs.get(j.job_id).state, "READY")
        with self.assertRaises(balsam.BadRequest) as e8:
            self.b.jobs.filter(workflow=wf).update(data={"loss": float("inf")})
        self.assertEqual(str(e8.exception), 'data.loss is inf, which a job cannot hold; use None or the string "inf"')
        j.data = {"loss": float("nan")}
        with self.assertRaises(balsam.BadRequest) as e9:
            j.save()
        self.assertEqual(str(e9.exception), 'data.loss is NaN, which a job cannot hold; use None or the string "NaN"')
        self.assertEqual(self.b.jobs.get(j.job_id).data, {}, "nothing was written")

    def test_a_wrong_token_is_unauthorized_and_a_dead_server_unreachable(self) -> None:
        bad = balsam.Balsam(url=self.b.url, token="0" * 48)
        with self.assertRaises(balsam.Unauthorized) as e:
            bad.jobs.count()
        self.assertEqual(e.exception.status, 401)
        with self.assertRaises(balsam.Unreachable) as e2:
            balsam.Balsam(url="http://127.0.0.1:9", token="x").jobs.count()
        self.assertIn("127.0.0.1:9", str(e2.exception))

    def test_an_uncaught_error_shows_one_line_from_the_server(self) -> None:
        r = support.run_python("import balsam; balsam.Balsam().jobs.get('ffffffff-0000-0000-0000-000000000000')")
        self.assertEqual(r.returncode, 1)
        last = r.stderr.strip().splitlines()[-1]
        self.assertTrue(last.startswith("balsam.errors.NotFound: "), r.stderr)
        self.assertNotRegex(r.stderr, r"\.(js|ts):\d+")

    def test_no_database_is_a_clear_error(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BALSAM_")}
        env["PYTHONPATH"] = support.CLIENT_ROOT
        r = subprocess.run([support.PYTHON, "-c", "import balsam; balsam.Balsam()"], env=env, capture_output=True, text=True)
        self.assertIn("ConfigError: no Balsam database: set BALSAM_DB_PATH", r.stderr)
        missing = support.unique("/tmp/nodb")
        r2 = subprocess.run([support.PYTHON, "-c", f"import balsam; balsam.Balsam(db_path={missing!r})"], env=env, capture_output=True, text=True)
        self.assertIn(f"{missing}/web.json not found: start `balsam web`", r2.stderr)


if __name__ == "__main__":
    unittest.main()
