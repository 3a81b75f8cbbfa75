"""A real Luigi central scheduler (luigid) on 127.0.0.1 for the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.services._process import free_port, require_module, stop_process, unavailable, wait_for_port


@dataclass
class Luigid:
    port: int

    def api(self, method: str, **data: object) -> dict:
        """Call the scheduler's JSON API (what the visualiser uses)."""
        query = urllib.parse.urlencode({"data": json.dumps(data)})
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/{method}?{query}", timeout=10) as reply:
            return dict(json.load(reply)["response"])

    def cli_args(self) -> list[str]:
        return ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(self.port)]


def start_luigid(directory: Path, config: str = "", port: int = 0) -> Iterator[Luigid]:
    """luigid on a free loopback port (or ``port``), its state, log and config (``config``: luigi.cfg
    text) in ``directory``: started again on the same port and directory, it loads the state it saved."""
    port = port or free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "luigid")
    if not os.path.exists(exe):
        unavailable("luigid is not installed next to the test interpreter")
    (directory / "luigid.cfg").write_text(config)
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(directory / "luigid.cfg")}
    log = open(directory / "luigid.log", "a")  # noqa: SIM115 - closed below
    process = subprocess.Popen([exe, "--address", "127.0.0.1", "--port", str(port), "--logdir", str(directory),
                                "--state-path", str(directory / "luigid.state")], stdout=log, stderr=log, env=env)
    try:
        wait_for_port(port, process, "luigid")
        yield Luigid(port)
    finally:
        stop_process(process)
        log.close()


@pytest.fixture
def luigid(tmp_path) -> Iterator[Luigid]:
    """luigid listening on a free loopback port, with its state in a temp dir."""
    yield from start_luigid(tmp_path)


@pytest.fixture
def luigid_short_leases(tmp_path) -> Iterator[Luigid]:
    """luigid that drops a worker silent for 3 s (default 60 s): claims of a killed run expire quickly."""
    yield from start_luigid(tmp_path, "[scheduler]\nworker_disconnect_delay = 3\n")


@pytest.fixture
def luigid_with_history(tmp_path) -> Iterator[tuple[Luigid, Path]]:
    """luigid recording its task history (``[scheduler] record_task_history``) in an SQLite file, and that file.

    Luigi's ``DbTaskHistory`` needs SQLAlchemy 1.4 (it runs raw SQL strings, which 2.x refuses).
    """
    require_module("sqlalchemy")
    db = tmp_path / "history.sqlite"
    config = f"[scheduler]\nrecord_task_history = true\n[task_history]\ndb_connection = sqlite:///{db}\n"
    for server in start_luigid(tmp_path, config):
        yield server, db
