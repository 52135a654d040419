"""What the tests share: the server under test, scripts, and real launchers.

The suite is run by test/integration/python.client.test.ts, which starts
`balsam web` on a database of the test servers and sets BALSAM_DB_PATH (its
web.json), BALSAM_TEST_NODE and BALSAM_TEST_BIN (the built `balsam`, to start
launchers) and BALSAM_NODELIST.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import unittest
import uuid
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_ROOT = os.path.dirname(HERE)
PYTHON = sys.executable

_scripts = tempfile.mkdtemp(prefix="balsam-py-scripts-")


def require_server() -> None:
    missing = [v for v in ("BALSAM_DB_PATH", "BALSAM_TEST_NODE", "BALSAM_TEST_BIN") if not os.environ.get(v)]
    if missing:
        raise unittest.SkipTest(f"{', '.join(missing)} not set: run through `node scripts/run-tests.mjs python.client`")


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def script(name: str, body: str, python: bool = False) -> str:
    """An executable file in a temporary directory; Python scripts get this interpreter."""
    path = os.path.join(_scripts, name)
    head = f"#!{PYTHON}\n" if python else "#!/bin/sh\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + body.lstrip("\n"))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


def job_env() -> Dict[str, str]:
    """What a job's Python needs to import this client without installing it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = CLIENT_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class Launcher:
    """A real `balsam launcher --job-mode serial --wf-filter WF`, as a batch script starts one."""

    def __init__(self, workflow: str, *extra: str):
        self.proc = subprocess.Popen(
            [os.environ["BALSAM_TEST_NODE"], os.environ["BALSAM_TEST_BIN"], "launcher", "--job-mode", "serial", "--wf-filter", workflow, *extra],
            env=job_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait(self, timeout: float = 120) -> str:
        """Waits for it to exit (it does when nothing is left) and returns its output; fails the test on a non-zero exit."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise AssertionError(f"the launcher ran longer than {timeout} s:\n{out}")
        if self.proc.returncode != 0:
            raise AssertionError(f"the launcher exited {self.proc.returncode}:\n{out}")
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def run_python(code_or_path: str, *args: str, cwd: Optional[str] = None, timeout: float = 60) -> subprocess.CompletedProcess:
    argv: List[str] = [PYTHON, code_or_path, *args] if os.path.exists(code_or_path) else [PYTHON, "-c", code_or_path, *args]
    return subprocess.run(argv, env=job_env(), cwd=cwd, capture_output=True, text=True, timeout=timeout)
