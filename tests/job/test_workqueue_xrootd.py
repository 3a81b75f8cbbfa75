"""The pilot work queue on a real XRootD server: the queue of pilots that share no file system.

Processes are spawned (XrdCl does not survive a fork), each with its own client; the
exclusive create is the server's ``kXR_new``; lease ages are measured on the server's
clock (whole seconds), so leases here are of two seconds.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid

from pylaw.job.queuestore import RemoteQueueStore, open_store
from pylaw.job.workqueue import QueueSpec, WorkQueue
from tests.services.xrootd import xrootd_server  # noqa: F401 - the fixture

CTX = multiprocessing.get_context("spawn")


def claim_all(url: str, pilot: str, results) -> None:
    queue = WorkQueue(open_store(url))
    claimed = []
    while leases := queue.claim(pilot, 2):
        for lease in leases:
            claimed.append(lease.branch)
            assert queue.complete(pilot, lease, time.time())
    results.put((os.getpid(), claimed))


def race(url: str, names: list[str], index: int, start, results) -> None:
    store = open_store(url)
    start.wait()
    order = names if index % 2 else names[::-1]  # two directions: they meet, and race, in the middle
    results.put([name for name in order if store.create(name, str(os.getpid()).encode())])


def new_queue(server, n: int, lease: float) -> tuple[str, WorkQueue]:
    url = f"{server.url}/queues/{uuid.uuid4().hex[:8]}"
    return url, WorkQueue.create(open_store(url), QueueSpec(tuple(range(n)), lease, 2, 2))


def test_three_processes_claim_every_branch_exactly_once_on_xrootd(xrootd_server):  # noqa: F811
    url, queue = new_queue(xrootd_server, 40, lease=60)
    assert isinstance(queue.store, RemoteQueueStore)
    assert queue.store.create("claims/999.1", b"a") and not queue.store.create("claims/999.1", b"b")
    assert queue.store.read("claims/999.1") == b"a", "the second create changed nothing"
    results = CTX.Queue()
    procs = [CTX.Process(target=claim_all, args=(url, f"p{i}", results)) for i in range(3)]
    for proc in procs:
        proc.start()
    got = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
    assert len({pid for pid, _ in got}) == 3
    assert sorted(b for _, claimed in got for b in claimed) == list(range(40)), "every branch claimed once"
    ledger = queue.ledger()
    assert ledger["claims"] == {**{b: [1] for b in range(40)}, 999: [1]} and sorted(ledger["done"]) == list(range(40))


def test_leases_expire_on_the_servers_clock_and_renewal_keeps_them(xrootd_server):  # noqa: F811
    _, queue = new_queue(xrootd_server, 2, lease=2)
    kept, dropped = sorted(queue.claim("holder", 2), key=lambda lease: lease.branch)
    assert abs(queue.store.now() - time.time()) < 5, "the server's clock, as its mtimes give it"
    for _ in range(4):
        time.sleep(1.0)
        queue.renew("holder", [kept])
    again = queue.claim("other", 2)
    assert [(lease.branch, lease.epoch) for lease in again] == [(dropped.branch, 2)], "only the unrenewed one"
    assert queue.superseded(dropped) and not queue.superseded(kept)
    assert queue.complete("other", again[0], time.time())
    assert not queue.complete("holder", dropped, time.time()), "the first completion wins on the server too"


def test_racing_creates_of_the_same_names_have_one_winner_each(xrootd_server):  # noqa: F811
    """The compare-and-swap itself: four processes create the same 60 names at the same instant."""
    url, queue = new_queue(xrootd_server, 0, lease=60)
    names = [f"claims/{b}.1" for b in range(60)]
    start, results = CTX.Event(), CTX.Queue()
    procs = [CTX.Process(target=race, args=(url, names, i, start, results)) for i in range(4)]
    for proc in procs:
        proc.start()
    time.sleep(3)  # all four spawned and connected
    start.set()
    won = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
    assert sorted(name for names_won in won for name in names_won) == sorted(names), "one winner per name"
    assert sum(1 for names_won in won if names_won) >= 2, "more than one process won names"
    contents = {queue.store.read(name) for name in names}
    assert len(contents) >= 2 and all(content and content.isdigit() for content in contents)
    assert not [n for n in queue.store.interface.listdir(f"{url}/claims") if n.startswith(".tmp-")], "no leftovers"
