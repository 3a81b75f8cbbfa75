"""Pilots as local processes (``python -m pylaw.job.pilot``), on a queue in a directory: no batch system.

What only a whole pilot shows: the slow pilot's staged result is discarded and the
winner's output survives, the walltime ends a pilot with work left, failures reach the
queue, and a pilot started on a missing queue says so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from pylaw.job.queuestore import LocalQueueStore
from pylaw.job.workqueue import QueueSpec, WorkQueue

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pilot(tmp_path, key: str, *params: str, walltime: float = 0) -> subprocess.Popen:
    (tmp_path / "luigi.cfg").write_text("[core]\nlog_level = WARNING\n")
    env = {**os.environ, "PYTHONPATH": ROOT, "PYLAW_STORE": str(tmp_path / "store"), "PYLAW_JOB_KEY": key,
           "PYLAW_ATTEMPT": "1", "LUIGI_CONFIG_PATH": str(tmp_path / "luigi.cfg")}
    argv = [sys.executable, "-m", "pylaw.job.pilot", "--queue", str(tmp_path / "queue"), "--walltime", str(walltime),
            "--module", "tests.workflow.pilot_tasks", "Uneven", "--version=v1", *params, "--workflow=local"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def queue(tmp_path, branches, lease: float, chunk: int = 1, attempts: int = 2) -> WorkQueue:
    spec = QueueSpec(tuple(branches), lease, chunk, attempts)
    return WorkQueue.create(LocalQueueStore(str(tmp_path / "queue")), spec)


def output(tmp_path, branch: int) -> dict:
    (path,) = (tmp_path / "store" / "Uneven" / "v1").glob(f"*/out_{branch}.json")
    return json.loads(path.read_text())


def wait(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_frozen_pilot_discards_its_result_and_the_winners_output_stays(tmp_path):
    q = queue(tmp_path, [0], lease=1.0)
    slow = pilot(tmp_path, "slow", "--n=1", "--sleep=3")
    try:
        wait(lambda: q.snapshot().status(0) == "leased")
        time.sleep(0.5)  # inside the branch's sleep
        os.kill(slow.pid, signal.SIGSTOP)  # its renewals stop with it
        time.sleep(1.5)
        fast = pilot(tmp_path, "fast", "--n=1", "--sleep=0")
        assert fast.wait(60) == 0, fast.stdout.read()
        winner = output(tmp_path, 0)
        assert winner["pilot"] == "fast.1"
        os.kill(slow.pid, signal.SIGCONT)
        out, _ = slow.communicate(timeout=60)
    finally:
        slow.kill()
    assert slow.returncode == 0, out
    assert "branch 0 discarded (lease 1 superseded)" in out
    assert output(tmp_path, 0) == winner, "the slow pilot did not overwrite the first completion"
    records = q.pilots()
    assert records["slow.1"]["discarded"] == [0] and records["fast.1"]["completed"] == [0]
    assert q.ledger()["claims"] == {0: [1, 2]} and q.ledger()["done"][0]["pilot"] == "fast.1"
    assert not list((tmp_path / "store" / ".pylaw-staging").glob("*/*")), "the discarded stage is gone"


def test_two_pilots_share_the_work_and_each_branch_is_published_once(tmp_path):
    q = queue(tmp_path, range(30), lease=10, chunk=3)
    procs = [pilot(tmp_path, key, "--n=30", "--sleep=0.05") for key in ("a", "b")]
    for proc in procs:
        assert proc.wait(120) == 0, proc.stdout.read()
    records = q.pilots()
    assert sorted(records["a.1"]["completed"] + records["b.1"]["completed"]) == list(range(30))
    assert records["a.1"]["completed"] and records["b.1"]["completed"], "both pilots worked"
    assert {output(tmp_path, b)["pilot"] for b in range(30)} == {"a.1", "b.1"}
    assert all(output(tmp_path, b)["pilot"] == q.ledger()["done"][b]["pilot"] for b in range(30))
    assert {r["reason"] for r in records.values()} == {"nothing left"}


def test_the_walltime_ends_a_pilot_with_work_left(tmp_path):
    q = queue(tmp_path, range(20), lease=1.0)
    proc = pilot(tmp_path, "w", "--n=20", "--sleep=0.4", walltime=3)
    assert proc.wait(60) == 0
    record = q.pilots()["w.1"]
    assert record["reason"] == "walltime nearly up"
    assert 0 < len(record["completed"]) < 20
    assert q.snapshot().counts()["pending"] == 20 - len(record["completed"]), "the rest is claimable"


def test_a_failing_branch_is_recorded_and_given_up_after_its_attempts(tmp_path):
    q = queue(tmp_path, [0, 1], lease=10, attempts=2)
    proc = pilot(tmp_path, "f", "--n=2", "--slow=1", "--slow-sleep=-1")  # time.sleep(-1) raises
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    snap = q.snapshot()
    assert (snap.status(0), snap.status(1)) == ("done", "failed")
    assert q.ledger()["failed"] == ["1.1", "1.2"], "two attempts, two leases"


def test_a_pilot_without_its_queue_says_so(tmp_path):
    proc = pilot(tmp_path, "x", "--n=1")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3 and "no pilot queue" in out
