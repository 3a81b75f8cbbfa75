"""The pilot work queue with real processes and real files: exclusive claims, lease expiry, the slow pilot.

No mocks and no clocks faked: leases of one to two seconds, processes started with
multiprocessing (``spawn``: nothing shared but the queue directory), killed with SIGKILL
or stopped with SIGSTOP.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time

import pytest

from pylaw.job.queuestore import LocalQueueStore, open_store
from pylaw.job.workqueue import Lease, QueueSpec, WorkQueue

CTX = multiprocessing.get_context("spawn")


def claim_all(root: str, pilot: str, chunk: int, results, start=None) -> None:
    """Claim chunks until nothing is claimable; complete each claimed branch at once.

    ``start`` (a barrier): begin only when every process is up, so a slow start cannot leave
    one process all the work.
    """
    queue = WorkQueue(LocalQueueStore(root))
    if start is not None:
        start.wait(60)
    claimed = []
    while leases := queue.claim(pilot, chunk):
        for lease in leases:
            claimed.append(lease.branch)
            assert queue.complete(pilot, lease, time.time())
    results.put((pilot, os.getpid(), claimed))


def claim_and_hang(root: str, ready) -> None:
    queue = WorkQueue(LocalQueueStore(root))
    leases = queue.claim("hanger", 5)
    ready.put([lease.branch for lease in leases])
    time.sleep(3600)


def make_queue(tmp_path, n: int, lease: float = 30.0, chunk: int = 1) -> WorkQueue:
    return WorkQueue.create(LocalQueueStore(str(tmp_path / "queue")), QueueSpec(tuple(range(n)), lease, chunk, 2))


def test_four_processes_claim_every_branch_exactly_once(tmp_path):
    make_queue(tmp_path, 200)
    results, start = CTX.Queue(), CTX.Barrier(4)
    procs = [CTX.Process(target=claim_all, args=(str(tmp_path / "queue"), f"p{i}", 3, results, start))
             for i in range(4)]
    for proc in procs:
        proc.start()
    got = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(30)
    assert len({pid for _, pid, _ in got}) == 4, "four distinct processes"
    claimed = [b for _, _, branches in got for b in branches]
    assert sorted(claimed) == list(range(200)), "every branch claimed once, none twice"
    ledger = WorkQueue(LocalQueueStore(str(tmp_path / "queue"))).ledger()
    assert ledger["claims"] == {b: [1] for b in range(200)}
    assert sorted(ledger["done"]) == list(range(200))
    assert sum(1 for _, _, branches in got if branches) >= 2, "the work was shared"


def test_a_killed_pilots_leases_expire_and_its_branches_come_back(tmp_path):
    queue = make_queue(tmp_path, 5, lease=1.5)
    ready = CTX.Queue()
    proc = CTX.Process(target=claim_and_hang, args=(str(tmp_path / "queue"), ready))
    proc.start()
    held = ready.get(timeout=30)
    assert sorted(held) == list(range(5))
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    assert queue.claim("other", 5) == [], "the leases are still live right after the kill"
    assert queue.snapshot().counts()["leased"] == 5
    time.sleep(2.0)
    again = queue.claim("other", 5)
    assert sorted(lease.branch for lease in again) == list(range(5))
    assert {lease.epoch for lease in again} == {2}, "a new lease number: the old one is history"
    for lease in again:
        assert queue.complete("other", lease, time.time())
    ledger = queue.ledger()
    assert ledger["claims"] == {b: [1, 2] for b in range(5)}
    assert {b: r["pilot"] for b, r in ledger["done"].items()} == dict.fromkeys(range(5), "other")


def test_renewal_keeps_a_lease_alive_past_the_lease_time(tmp_path):
    queue = make_queue(tmp_path, 1, lease=1.0)
    (lease,) = queue.claim("holder", 1)
    for _ in range(4):
        time.sleep(0.4)
        queue.renew("holder", [lease])
        assert queue.claim("thief", 1) == []
    assert not queue.superseded(lease)


def test_a_slow_pilot_that_lost_its_lease_cannot_complete(tmp_path):
    """SIGSTOP freezes the holder (and its renewals) past the lease; the second pilot's result wins."""
    queue = make_queue(tmp_path, 1, lease=1.0)
    ready = CTX.Queue()
    proc = CTX.Process(target=claim_and_hang, args=(str(tmp_path / "queue"), ready))
    proc.start()
    assert ready.get(timeout=30) == [0]
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        time.sleep(1.5)
        (second,) = queue.claim("fast", 1)
        assert second == Lease(0, 2)
        slow = Lease(0, 1)
        assert queue.superseded(slow), "the slow pilot sees its lease was taken over"
        assert queue.complete("fast", second, time.time())
        assert not queue.complete("slow", slow, time.time()), "the first completion wins, the second loses"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
    assert queue.ledger()["done"][0]["pilot"] == "fast"


def test_when_the_slow_pilot_completes_first_the_new_holder_loses(tmp_path):
    queue = make_queue(tmp_path, 1, lease=0.5)
    (slow,) = queue.claim("slow", 1)
    time.sleep(1.0)
    (fast,) = queue.claim("fast", 1)
    assert queue.complete("slow", slow, time.time())  # it did not look: the completion still decides
    assert queue.superseded(fast) and not queue.complete("fast", fast, time.time())
    assert queue.snapshot().status(0) == "done"


def test_failures_count_as_attempts_and_release_does_not(tmp_path):
    queue = make_queue(tmp_path, 2, lease=30)
    a, b = sorted(queue.claim("p", 2), key=lambda lease: lease.branch)
    queue.fail("p", a, "exit code 4")
    queue.release("p", b)
    snap = queue.snapshot()
    assert (snap.status(0), snap.status(1)) == ("pending", "pending"), "claimable at once, no expiry needed"
    (a2,) = [lease for lease in queue.claim("p", 2) if lease.branch == 0]
    queue.fail("p", a2, "exit code 4")
    assert queue.snapshot().status(0) == "failed", "two failed leases: given up (attempts = 2)"
    assert queue.snapshot().counts() == {"done": 0, "leased": 1, "failed": 1, "pending": 0}


def test_a_rerun_of_the_submitter_finds_the_same_queue(tmp_path):
    queue = make_queue(tmp_path, 3)
    (lease, *_) = queue.claim("p", 1)
    again = WorkQueue.create(LocalQueueStore(str(tmp_path / "queue")), QueueSpec((7, 8), 1.0, 1, 1))
    assert again.spec.branches == (0, 1, 2), "the spec of the running pilots is kept"
    assert again.snapshot().status(lease.branch) == "leased"


def test_the_ledger_files_are_plain_json(tmp_path):
    queue = make_queue(tmp_path, 1)
    (lease,) = queue.claim("p", 1)
    queue.complete("p", lease, 123.0)
    assert json.loads((tmp_path / "queue" / "done" / "0").read_text()) == {"pilot": "p", "epoch": 1, "time": 123.0}


def test_a_queue_url_without_atomic_create_is_refused():
    with pytest.raises(ValueError, match="root:// URL"):
        open_store("davs://example.org/queue")
