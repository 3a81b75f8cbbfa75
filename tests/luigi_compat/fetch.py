"""Fetch Luigi's own test suite for the installed Luigi version (its sdist ships ``test/``).

``python -m tests.luigi_compat.fetch`` downloads the sdist from the package index with pip
once and extracts only ``test/`` into ``.luigi-compat/`` at the repository root (ignored by
git); later calls reuse it. Only the tests are extracted, so ``import luigi`` in them always
finds the installed Luigi, never a copy from the sdist.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(ROOT, ".luigi-compat")


def luigi_version() -> str:
    return importlib.metadata.version("luigi")


def suite_dir(version: str | None = None) -> str:
    """Directory holding ``test/`` of Luigi ``version`` (default: the installed one)."""
    return os.path.join(CACHE, f"luigi-{version or luigi_version()}")


def fetch(version: str | None = None) -> str:
    """Download and extract Luigi's tests unless present; returns :func:`suite_dir`."""
    version = version or luigi_version()
    target = suite_dir(version)
    if os.path.isfile(os.path.join(target, "test", "helpers.py")):
        return target
    os.makedirs(CACHE, exist_ok=True)
    sdist = os.path.join(CACHE, f"luigi-{version}.tar.gz")
    if not os.path.isfile(sdist):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        f"luigi=={version}", "-d", CACHE], check=True)
    prefix = f"luigi-{version}/test/"
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
        if not members:
            raise RuntimeError(f"{sdist} ships no test/ directory")
        archive.extractall(CACHE, members=members, filter="data")
    return target


if __name__ == "__main__":
    print(fetch())
