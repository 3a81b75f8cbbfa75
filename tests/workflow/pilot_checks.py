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
    """Every branch completed once in the ledger, by a pilot that recorded it, and published nothing else."""
    ledger = queue.ledger()
    assert sorted(ledger["done"]) == list(range(n)), "every branch has its one completion"
    pilots = queue.pilots()
    completed = [b for record in pilots.values() for b in record["completed"]]
    assert sorted(completed) == list(range(n)), "no branch completed by two pilots, none by nobody"
    for branch, record in ledger["done"].items():
        assert branch in pilots[record["pilot"]]["completed"]
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
