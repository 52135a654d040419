"""What the client decides before sending anything: field names, lookups, discovery."""
from __future__ import annotations

import json
import os
import tempfile
import unittest
from unittest import mock

import balsam
from balsam import fields as F
from balsam._http import discover
from balsam.jobs import Job, JobQuery


class LocalTest(unittest.TestCase):
    def test_0x_names_map_to_the_apis(self) -> None:
        spec = F.to_spec({"num_nodes": 2, "application_args": "-x", "environ_vars": "A=1:PATH=/a:/b,C=3", "wall_time_minutes": 5, "numNodes": 3})
        self.assertEqual(spec, {"numNodes": 3, "args": "-x", "environVars": {"A": "1", "PATH": "/a:/b", "C": "3"}, "wallTimeMinutes": 5})
        with self.assertRaises(balsam.BadRequest) as e:
            F.to_spec({"nodes": 1})
        self.assertEqual(str(e.exception), "unknown job field 'nodes'")
        with self.assertRaises(balsam.BadRequest):
            F.to_spec({"state": "READY"})

    def test_lookups_go_to_the_server_when_it_has_a_selector(self) -> None:
        q = JobQuery(None).filter(name__contains="task", workflow="TEST", state__in=["READY", "RUNNING"])
        self.assertEqual(q._sel, {"name": "task", "workflow": "TEST", "state": "READY,RUNNING"})
        # The server's name match ignores case; Django's contains does not: narrowed there, checked here.
        self.assertEqual(q._preds, [("name", "contains", "task", False)])
        self.assertFalse(q._matches({"name": "Task1"}))
        qi = JobQuery(None).filter(name__icontains="task", job_id__startswith="ab")
        self.assertEqual(qi._sel, {"name": "task", "id": "ab"})
        self.assertEqual(qi._preds, [("_id", "startswith", "ab", False)], "the server's id selector matches any part of the id")
        q2 = JobQuery(None).filter(name="task1", workflow__contains="TE", num_nodes__gte=2)
        self.assertEqual(q2._sel, {})
        self.assertEqual(len(q2._preds), 3)
        self.assertTrue(q2._matches({"name": "task1", "workflow": "TEST", "numNodes": 2}))
        self.assertFalse(q2._matches({"name": "task10", "workflow": "TEST", "numNodes": 2}))
        with self.assertRaises(balsam.BadRequest) as e:
            JobQuery(None).filter(name__regex="x")
        self.assertIn("unknown lookup '__regex'", str(e.exception))
        with self.assertRaises(balsam.BadRequest):
            JobQuery(None).filter(state__in="READY")

    def test_a_job_reads_in_snake_case_and_refuses_unknown_fields(self) -> None:
        j = Job({"_id": "a" * 36, "args": "-x", "numNodes": 2, "createdAt": "2026-01-02T03:04:05.000Z", "data": {"result": 3}})
        self.assertEqual((j.application_args, j.num_nodes, j.pk, j.result), ("-x", 2, "a" * 36, 3))
        self.assertEqual(j.created_at.year, 2026)
        with self.assertRaises(AttributeError):
            j.no_such_field
        with self.assertRaises(balsam.BadRequest):
            j.no_such_field = 1
        with self.assertRaises(balsam.BadRequest):
            j.state = "FAILED"

    def test_discovery_reads_web_json_and_says_what_is_missing(self) -> None:
        d = tempfile.mkdtemp()
        with mock.patch.dict(os.environ, {"BALSAM_WEB_URL": "", "BALSAM_WEB_TOKEN": ""}):
            with self.assertRaises(balsam.ConfigError) as e:
                discover(db_path=d)
            self.assertEqual(str(e.exception), f"{d}/web.json not found: start `balsam web` for this database (BALSAM_DB_PATH={d})")
            with open(os.path.join(d, "web.json"), "w") as f:
                json.dump({"url": "http://127.0.0.1:1/", "token": "t" * 48}, f)
            self.assertEqual(discover(db_path=d), ("http://127.0.0.1:1", "t" * 48))
            self.assertEqual(discover(url="http://h:2", token="x", db_path=d), ("http://h:2", "x"))


if __name__ == "__main__":
    unittest.main()
