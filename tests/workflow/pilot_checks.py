"""What the pilot end-to-end tests check on every backend: outputs, the ledger, the pilots' end times."""

from __future__ import annotations

import glob
import json
import math
import os

from pylaw.job.queuestore import LocalQueueStore
from pylaw.job.workqueue import WorkQueue


def queue_of(job_dir: str) -> WorkQueue:
    with open(os.path.join(job_dir, "submission.json")) as f:
        return WorkQueue(LocalQueueStore(json.load(f)["pilots"]["queue"]))


def outputs(store: str) -> dict[int, dict]:
    found = {}
    for path in glob.glob(os.path.join(store, "Uneven", "v1", "*", "out_*.json")):
        with open(path) as f:
            found[int(os.path.basename(path)[4:-5])] = json.load(f)
    return found


def check_exactly_once(queue: WorkQueue, n: int) -> dict:
    """Every branch completed once in the ledger, and no pilot claims a completion the ledger gives another.

    The ledger's ``done/`` entry (created once) is the completion; a pilot's own record lists
    what it completed after the fact, so a pilot killed between the two (condor_rm, kill -9)
    may miss its last one: allowed only for a pilot that never ended normally.
    """
    ledger = queue.ledger()
    assert sorted(ledger["done"]) == list(range(n)), "every branch has its one completion"
    pilots = queue.pilots()
    completed = [b for record in pilots.values() for b in record["completed"]]
    assert len(completed) == len(set(completed)), "no branch completed by two pilots"
    for name, record in pilots.items():
        for branch in record["completed"]:
            assert ledger["done"][branch]["pilot"] == name, f"pilot {name} recorded branch {branch} it did not win"
    for branch, done in ledger["done"].items():
        winner = pilots[done["pilot"]]
        assert branch in winner["completed"] or not winner["ended"], \
            f"branch {branch}: its winner ended normally without recording it"
    return ledger


def spread(ends: list[float], start: float) -> float:
    """How far apart the pilots finished working, relative to the whole run."""
    return (max(ends) - min(ends)) / (max(ends) - start)


def static_spread(durations: dict[int, float], pilots: int) -> float:
    """The same measure for static binding of the same branches: ``ceil(n / pilots)`` consecutive
    branches per job, each job's time the sum of its branches' measured durations, all starting together."""
    size = math.ceil(len(durations) / pilots)
    order = sorted(durations)
    sums = [sum(durations[b] for b in order[i:i + size]) for i in range(0, len(order), size)]
    return spread(sums, 0.0)


def busy_pilot(queue: WorkQueue) -> dict | None:
    """A running pilot that completed two branches and holds a live lease now (killing it loses work)."""
    snapshot = queue.snapshot()
    holders = set()
    for branch, view in snapshot.views.items():
        if snapshot.status(branch) == "leased":
            holders.add(json.loads(queue.store.read(f"claims/{branch}.{view.epoch}") or b"{}").get("pilot"))
    busy = [r for r in queue.pilots().values() if len(r["completed"]) >= 2 and not r["ended"] and r["id"] in holders]
    return busy[0] if busy else None
