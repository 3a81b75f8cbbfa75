"""Test isolation: a fresh store, index and Luigi instance cache for every test."""

from __future__ import annotations

import os
import sys

import luigi
import pytest
from luigi.task_register import Register

from tests.services.htcondor import htcondor_pool, htcondor_pools  # noqa: F401 - one pool per session, for every module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own store and task index, and no cached task instances."""
    store = tmp_path / "store"
    monkeypatch.setenv("PYLAW_STORE", str(store))
    monkeypatch.setenv("PYLAW_INDEX", str(tmp_path / "index.json"))
    Register.clear_instance_cache()
    yield store
    Register.clear_instance_cache()


def build(*tasks, workers=1) -> bool:
    """Run tasks with a local scheduler; True when everything succeeded."""
    return luigi.build(list(tasks), local_scheduler=True, workers=workers, log_level="ERROR")


def cli_env(tmp_path, **extra) -> dict[str, str]:
    """Environment for running pylaw's CLI in a subprocess against the test store."""
    env = dict(os.environ)
    env.update({"PYTHONPATH": os.pathsep.join([str(tmp_path), ROOT, env.get("PYTHONPATH", "")]),
                "PYLAW_STORE": str(tmp_path / "store"), "PYLAW_INDEX": str(tmp_path / "index.json"),
                "LUIGI_CONFIG_PATH": str(tmp_path / "luigi.cfg")})
    env.update(extra)
    return env


PYTHON = sys.executable
