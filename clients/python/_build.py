"""A PEP 517 build backend in the standard library, so that
``pip install ./clients/python`` works on a machine with no package index and
no ``wheel`` package (Debian's and pyenv's Pythons differ there): pip builds
in an empty isolated environment and needs nothing from PyPI."""
from __future__ import annotations

import base64
import hashlib
import os
import tarfile
import zipfile

NAME = "balsam_mq"
VERSION = "0.1.0"
ROOT = os.path.dirname(os.path.abspath(__file__))
PACKAGES = ("balsam",)
TAG = "py3-none-any"


def _metadata() -> str:
    return (
        "Metadata-Version: 2.1\n"
        f"Name: balsam-mq\nVersion: {VERSION}\n"
        "Summary: Python client of Balsam on MongoDB and BullMQ (talks to balsam web; standard library only)\n"
        "License: BSD-3-Clause\nRequires-Python: >=3.9\n"
    )


def _files():
    for pkg in PACKAGES:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, pkg)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for f in sorted(filenames):
                if f.endswith(".py"):
                    full = os.path.join(dirpath, f)
                    yield full, os.path.relpath(full, ROOT).replace(os.sep, "/")


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _wheel(wheel_directory: str, entries) -> str:
    name = f"{NAME}-{VERSION}-{TAG}.whl"
    info = f"{NAME}-{VERSION}.dist-info"
    records = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        extra = [
            (f"{info}/METADATA", _metadata().encode()),
            (f"{info}/WHEEL", f"Wheel-Version: 1.0\nGenerator: balsam _build\nRoot-Is-Purelib: true\nTag: {TAG}\n".encode()),
            (f"{info}/top_level.txt", "\n".join(PACKAGES).encode() + b"\n"),
        ]
        for arcname, data in list(entries) + extra:
            z.writestr(arcname, data)
            records.append(_record_line(arcname, data))
        records.append(f"{info}/RECORD,,")
        z.writestr(f"{info}/RECORD", "\n".join(records) + "\n")
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, ((arc, open(full, "rb").read()) for full, arc in _files()))


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth file pointing at this directory: edits take effect without reinstalling.
    return _wheel(wheel_directory, [(f"{NAME}.pth", (ROOT + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    base = f"{NAME}-{VERSION}"
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for rel in ("pyproject.toml", "_build.py", "README.md"):
            t.add(os.path.join(ROOT, rel), arcname=f"{base}/{rel}")
        for full, arc in _files():
            t.add(full, arcname=f"{base}/{arc}")
        pkg_info = _metadata().encode()
        ti = tarfile.TarInfo(f"{base}/PKG-INFO")
        ti.size = len(pkg_info)
        import io

        t.addfile(ti, io.BytesIO(pkg_info))
    return name
