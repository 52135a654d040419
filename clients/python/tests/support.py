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


class Announcements:
    """The launchers' "finished" announcements, read straight from Redis (the
    database's settings.json names it) on a plain socket: the moment a
    record is announced, on this process's clock, to measure how long
    `balsam web` takes to push it on."""

    def __init__(self) -> None:
        import json
        import socket
        import threading
        import urllib.parse

        with open(os.path.join(os.environ["BALSAM_DB_PATH"], "settings.json"), encoding="utf-8") as f:
            settings = json.load(f)
        url = urllib.parse.urlparse(settings["redisUrl"])
        self.channel = f"{settings.get('queuePrefix', 'balsam')}:events:finished"
        self.sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379), timeout=10)
        self.f = self.sock.makefile("rb")
        if url.password:
            self._send("AUTH", *([urllib.parse.unquote(url.username)] if url.username else []), urllib.parse.unquote(url.password))
            self._read()
        self._send("SUBSCRIBE", self.channel)
        self._read()  # the subscription's confirmation: from here on nothing is missed
        self.sock.settimeout(None)
        self.at: Dict[str, float] = {}
        self._json = json
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _send(self, *args: str) -> None:
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))

    def _read(self):
        line = self.f.readline()
        if not line:
            raise EOFError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind in (b"+", b":"):
            return rest
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if kind == b"*":
            return [self._read() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected reply from redis: {line!r}")

    def _loop(self) -> None:
        import time

        try:
            while True:
                msg = self._read()
                if isinstance(msg, list) and msg[0] == b"message":
                    now = time.time()
                    # One job per message, or the jobs of one write in a list (as parseFinished reads them).
                    body = self._json.loads(msg[2])
                    for f in body if isinstance(body, list) else [body]:
                        self.at.setdefault(f["id"], now)
        except (OSError, EOFError, ValueError):
            return

    def close(self) -> None:
        import socket

        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(timeout=5)


class ClientTest(unittest.TestCase):
    """A test class with one client, ``self.b``, on the test server."""

    @classmethod
    def setUpClass(cls) -> None:
        import balsam

        cls.b = balsam.Balsam()


class NoopAppTest(ClientTest):
    """A client and an app that only echoes, for test classes that add jobs; ``create`` is how they add one."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.app = unique("noop")
        cls.b.apps.add(cls.app, script(cls.app, "echo noop\n"))

    def create(self, **fields):
        return self.b.jobs.add(**fields)

    def add(self, **fields):
        fields.setdefault("application", self.app)
        return self.create(**fields)
