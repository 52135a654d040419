"""`pip install ./clients/python` gives the same package (when pip is here)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from . import support


class InstallTest(unittest.TestCase):
    def test_pip_installs_the_package_without_an_index(self) -> None:
        if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
            self.skipTest("pip is not installed for this Python")
        target = tempfile.mkdtemp(prefix="balsam-pip-")
        try:
            # --no-index: the package's own backend (_build.py) needs nothing from an index.
            r = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target", target, support.CLIENT_ROOT],
                capture_output=True, text=True, timeout=300,
                cwd=tempfile.gettempdir(),
            )
            self.assertEqual(r.returncode, 0, r.stderr)
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            env["PYTHONPATH"] = target
            r2 = subprocess.run(
                [sys.executable, "-c", "import balsam, balsam.launcher.dag as d; print(balsam.__file__, d.BalsamJob.__name__)"],
                env={**env, "BALSAM_JOB_ID": ""}, capture_output=True, text=True, cwd=target,
            )
            self.assertEqual(r2.returncode, 0, r2.stderr)
            self.assertTrue(r2.stdout.startswith(os.path.join(target, "balsam", "__init__.py")), r2.stdout)
            self.assertIn("BalsamJob", r2.stdout)
        finally:
            shutil.rmtree(target, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
