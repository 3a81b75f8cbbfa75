"""The work queue of pilot jobs: branches leased to pilots, with a ledger of claims and completions.

Files of a queue (in a :class:`~pylaw.job.queuestore.QueueStore`), none ever rewritten
by anybody but its creator, and none but the pilot records and the spec ever removed
while the queue is in use::

    spec.json          the branches, the lease time, the chunk size, attempts per branch
    claims/<b>.<e>     lease number e (1, 2, ...) of branch b: created exclusively, its mtime
                       renewed by the holder; the lease is live while it is younger than
                       the lease time and no later lease, completion, failure or release exists
    done/<b>           the completion of branch b: created exclusively; the first one wins
    failed/<b>.<e>     lease e ended with the branch failing (counts as an attempt)
    released/<b>.<e>   lease e given back unfinished (walltime): claimable again at once
    pilots/<id>.json   what each pilot did (start, end, branches completed and discarded)

Why this holds without locks or a server: every decision is one exclusive create, which
exactly one caller wins. Two pilots seeing branch 7's lease 2 expire both try to create
``claims/7.3``: one gets the lease. A pilot that stopped renewing (killed, its node lost,
stopped) loses nothing: its leases age past the lease time and the branches are claimed
again. A slow pilot whose lease was taken over still finishes its run, but into its own
staging directory; it then finds ``claims/7.3`` (superseded) or tries to create
``done/7`` and loses: it discards its result, and the outputs of the winner, the first
completion, are never overwritten. ``done/<b>`` is created once, so no branch completes
twice; a branch is never lost, since without ``done``, a live lease or a final failure it
is claimable.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from pylaw.errors import SubmissionStateError
from pylaw.job.queuestore import QueueStore

DIRECTORIES = ("claims", "done", "failed", "released", "pilots")


@dataclass(frozen=True)
class QueueSpec:
    """What the submitter puts into a queue; pilots read it once."""

    branches: tuple[int, ...]
    lease: float = 60.0     # seconds a claim lives without renewal
    chunk: int = 1          # branches per claim
    attempts: int = 2       # failed leases per branch before it is given up (1 + retries)

    def to_json(self) -> bytes:
        return json.dumps({**dataclasses.asdict(self), "format": 1}).encode()


@dataclass(frozen=True)
class Lease:
    branch: int
    epoch: int

    @property
    def name(self) -> str:
        return f"{self.branch}.{self.epoch}"


@dataclass
class BranchView:
    """What one listing of the queue says about a branch."""

    epoch: int = 0          # its latest lease (0: never claimed)
    renewed: float = 0.0    # mtime of that lease
    done: bool = False
    failures: int = 0
    closed: set[int] = field(default_factory=set)  # leases that failed or were released


@dataclass
class Snapshot:
    """The queue at one instant (three or four listings), classified per branch."""

    spec: QueueSpec
    now: float
    views: dict[int, BranchView]

    def status(self, branch: int) -> str:
        """``done``, ``failed`` (given up), ``leased`` (a live lease) or ``pending`` (claimable)."""
        view = self.views.get(branch, BranchView())
        if view.done:
            return "done"
        if view.failures >= self.spec.attempts:
            return "failed"
        if view.epoch and view.epoch not in view.closed and self.now - view.renewed <= self.spec.lease:
            return "leased"
        return "pending"

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("done", "leased", "failed", "pending"), 0)
        for branch in self.spec.branches:
            counts[self.status(branch)] += 1
        return counts

    def claimable(self) -> list[int]:
        return [b for b in self.spec.branches if self.status(b) == "pending"]

    @property
    def finished(self) -> bool:
        """Nothing is left to run or running: every branch is done or given up."""
        counts = self.counts()
        return counts["leased"] == 0 and counts["pending"] == 0


def _split(name: str) -> tuple[int, int] | None:
    branch, _, epoch = name.partition(".")
    return (int(branch), int(epoch)) if branch.isdigit() and epoch.isdigit() else None


class WorkQueue:
    """Claims, renewals and completions on one queue; used by pilots and by the submitter."""

    def __init__(self, store: QueueStore) -> None:
        self.store = store
        self._spec: QueueSpec | None = None

    @classmethod
    def create(cls, store: QueueStore, spec: QueueSpec) -> WorkQueue:
        """A new queue (or the existing one at the same place, after a submitter's crash)."""
        store.prepare(*DIRECTORIES)
        store.create("spec.json", spec.to_json())  # a rerun finds the queue its pilots are working on
        return cls(store)

    @property
    def spec(self) -> QueueSpec:
        if self._spec is None:
            raw = self.store.read("spec.json")
            if raw is None:
                raise SubmissionStateError(f"no pilot queue at {self.store.location} (spec.json is missing); "
                                           f"rerun the submitting command, which creates it")
            data = json.loads(raw)
            self._spec = QueueSpec(tuple(data["branches"]), float(data["lease"]), int(data["chunk"]),
                                   int(data["attempts"]))
        return self._spec

    # -- reading -------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        now = self.store.now()  # before the listings: a lease renewed meanwhile only looks older
        views: dict[int, BranchView] = {}
        for name, mtime in self.store.listing("claims").items():
            parsed = _split(name)
            if parsed:
                view = views.setdefault(parsed[0], BranchView())
                if parsed[1] > view.epoch:
                    view.epoch, view.renewed = parsed[1], mtime
        for name in self.store.listing("done"):
            if name.isdigit():
                views.setdefault(int(name), BranchView()).done = True
        for directory in ("failed", "released"):
            for name in self.store.listing(directory):
                parsed = _split(name)
                if parsed:
                    view = views.setdefault(parsed[0], BranchView())
                    view.closed.add(parsed[1])
                    view.failures += directory == "failed"
        return Snapshot(self.spec, now, views)

    def is_done(self, branch: int) -> bool:
        return self.store.read(f"done/{branch}") is not None

    def superseded(self, lease: Lease) -> bool:
        """A later lease of the branch exists, or it was completed: the holder's result must be discarded."""
        return self.store.read(f"claims/{lease.branch}.{lease.epoch + 1}") is not None or self.is_done(lease.branch)

    def ledger(self) -> dict[str, Any]:
        """Every claim and completion: ``{"claims": {b: [epochs]}, "done": {b: record}, "failed": ...}``."""
        claims: dict[int, list[int]] = {}
        for name in self.store.listing("claims"):
            parsed = _split(name)
            if parsed:
                claims.setdefault(parsed[0], []).append(parsed[1])
        done = {int(name): json.loads(self.store.read(f"done/{name}") or b"{}")
                for name in self.store.listing("done") if name.isdigit()}
        failed = sorted(n for n in self.store.listing("failed") if _split(n))
        return {"claims": {b: sorted(e) for b, e in sorted(claims.items())}, "done": done, "failed": failed}

    def pilots(self) -> dict[str, dict[str, Any]]:
        records = {}
        for name in self.store.listing("pilots"):
            raw = self.store.read(f"pilots/{name}")
            if name.endswith(".json") and raw:
                records[name[:-5]] = json.loads(raw)
        return records

    # -- pilots --------------------------------------------------------------------

    def claim(self, pilot: str, limit: int) -> list[Lease]:
        """Lease up to ``limit`` claimable branches, in branch-map order (first in, first out: long
        branches put first run first). Pilots claiming at once race for the same names; a lost race
        costs one refused create, and the loser tries the next branch."""
        snapshot = self.snapshot()
        leases: list[Lease] = []
        body = json.dumps({"pilot": pilot, "time": snapshot.now}).encode()
        for branch in snapshot.claimable():
            lease = Lease(branch, snapshot.views.get(branch, BranchView()).epoch + 1)
            if self.store.create(f"claims/{lease.name}", body):
                leases.append(lease)
                if len(leases) >= limit:
                    break
        return leases

    def renew(self, pilot: str, leases: list[Lease]) -> None:
        """Push the expiry of held leases (a superseded one is renewed harmlessly: it is no longer the latest)."""
        body = json.dumps({"pilot": pilot, "renewed": True}).encode()
        for lease in leases:
            self.store.replace(f"claims/{lease.name}", body)

    def complete(self, pilot: str, lease: Lease, when: float) -> bool:
        """Record the completion; True for the one pilot that publishes its result (the first)."""
        body = json.dumps({"pilot": pilot, "epoch": lease.epoch, "time": when}).encode()
        return self.store.create(f"done/{lease.branch}", body)

    def fail(self, pilot: str, lease: Lease, reason: str) -> None:
        self.store.create(f"failed/{lease.name}", json.dumps({"pilot": pilot, "reason": reason[-2000:]}).encode())

    def release(self, pilot: str, lease: Lease) -> None:
        self.store.create(f"released/{lease.name}", json.dumps({"pilot": pilot}).encode())

    def record_pilot(self, pilot: str, record: dict[str, Any]) -> None:
        self.store.replace(f"pilots/{pilot}.json", json.dumps(record).encode())
