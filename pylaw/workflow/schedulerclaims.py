"""Branch claims in the central scheduler: no branch runs twice at once across machines.

Under luigid a local workflow's branches are still not scheduled by Luigi (its worker
pays per pending task on every ``get_work``), but each branch is *claimed* in luigid,
under its own Luigi task id, before it runs. The protocol uses luigid's RPC API only:

* a claims worker of its own per run (``pylaw-branches:HOST:PID:RANDOM``, in luigid's
  worker list with the workflow it serves), never the Luigi worker's id: ``get_work``
  from that id would hand out the run's other tasks too;
* **register**: ``add_task(PENDING, runnable, batchable)`` for every branch to run, one
  call each (luigid has no bulk ``add_task``), a chunk ahead of the claims;
* **claim**: ``get_work`` with a batcher on ``branch`` (``add_task_batcher``): one call
  hands out up to ``chunk`` branches, which luigid marks ``BATCH_RUNNING`` (``RUNNING``
  for a single one) with this worker as ``worker_running``. luigid serves one request at
  a time, and ``get_work`` offers only ``PENDING`` tasks, so two runs never get the same
  branch: that is the lock;
* **release**, batched too: ``get_work`` gives the batch an id; one ``add_task(RUNNING,
  batch_id)`` makes a *claim task* for it (``Family__claims(branches=3-6, workflow=...)``
  in the visualiser), and when all its branches ended, one ``add_task(DONE)`` of the
  claim task sets every branch still ``BATCH_RUNNING`` in it to ``DONE`` (luigid's own
  batch semantics). A failed branch is released alone first (``add_task(FAILED)`` with
  its traceback). A single claimed branch (no batch) is released alone;
* **lease**: a thread pings every second. A run that dies (even ``kill -9``) stops
  pinging; luigid drops a worker silent for ``[scheduler] worker_disconnect_delay``
  (60 s by default) at its next prune (every 60 s, and on every ``task_list``, which the
  waiting runs call) and marks its running tasks ``FAILED``; a waiting run registers
  them again as ``PENDING`` and claims them.

Branches held by another worker (a run, or a Luigi worker running the branch directly:
the same task id) are waited for: a released branch is taken if its outputs are still
missing. Outputs stay the truth for "made": a claimed branch's completeness is checked
once more before it runs (one ``complete()`` each), because luigid cannot say whether
it was made after this run listed the outputs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from luigi.rpc import RemoteScheduler, RPCError

from pylaw.errors import BranchClaimError
from pylaw.workflow.base import describe_numbers

logger = logging.getLogger("pylaw.workflow")

#: luigid states in which a branch is held by its ``worker_running`` (or, DISABLED, by luigid itself)
_HELD = ("RUNNING", "BATCH_RUNNING", "DISABLED")
_PING_EVERY = 1.0
#: family of the claim tasks of a workflow family (``Selection__claims(workflow=..., branches=0-7)``)
CLAIMS_SUFFIX = "__claims"


class BranchClaims:
    """The claims of one local workflow run in luigid (see the module docstring)."""

    def __init__(self, url: str, workflow: Any, branches: Sequence[Any], chunk: int) -> None:
        self.url, self.workflow, self.chunk = url, workflow, max(1, chunk)
        self.family = workflow.get_task_family()
        self.by_id = {branch.task_id: branch for branch in branches}
        self.unregistered = list(reversed(self.by_id))  # registered a chunk at a time, first branches first
        self.worker = f"pylaw-branches:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.host = socket.gethostname()
        self.remote = RemoteScheduler(url)
        self.pinger_remote = RemoteScheduler(url)  # its own connection: a requests session is not thread-safe
        self.stopping = threading.Event()
        self.pinger = threading.Thread(target=self._ping, name="pylaw-branch-claims", daemon=True)
        self.ping_failures = 0
        self.batch_of: dict[str, str | None] = {}  # claimed branch -> its batch id (None: claimed alone)
        self.unended: dict[str, set[str]] = {}  # batch id -> its branches not ended yet

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> BranchClaims:
        """Announce the claims worker and start the lease pings (branches are registered as claims go)."""
        self._call("add_worker", worker=self.worker, info={
            "host": self.host, "pid": os.getpid(), "serves": self.workflow.task_id, "kind": "pylaw branch claims"})
        self._call("add_task_batcher", worker=self.worker, task_family=self.family, batched_args=["branch"],
                   max_batch_size=self.chunk)
        self.pinger.start()
        return self

    def close(self) -> None:
        """Stop pinging (luigid forgets the worker after its disconnect delay) and close the connection."""
        self.stopping.set()
        if self.pinger.is_alive():
            self.pinger.join(5)
        self.remote.close()
        self.pinger_remote.close()

    # -- the protocol ----------------------------------------------------------------

    def register(self, task_ids: Iterable[str]) -> None:
        """Offer branches to this run: ``PENDING`` unless another worker holds them (luigid keeps that)."""
        for task_id in task_ids:
            branch = self.by_id[task_id]
            self._call("add_task", worker=self.worker, task_id=task_id, status="PENDING", runnable=True,
                       batchable=True, family=self.family, module=branch.task_module,
                       params=branch.to_str_params(only_significant=True, only_public=True))

    def claim(self) -> list[str]:
        """Claim up to ``chunk`` of this run's branches; ``[]`` when luigid offers none.

        Branches are registered a chunk ahead of the claims, so the first ones run at once
        and later registrations overlap with the forked workers' work.
        """
        while True:
            self.register([self.unregistered.pop() for _ in range(min(self.chunk, len(self.unregistered)))])
            ids = self._get_work()
            if ids or not self.unregistered:
                return ids

    def _get_work(self) -> list[str]:
        reply = self._call("get_work", worker=self.worker, host=self.host)
        batch = reply.get("batch_id") if reply.get("batch_task_ids") else None
        ids = list(reply.get("batch_task_ids") or ([reply["task_id"]] if reply.get("task_id") else []))
        unknown = [i for i in ids if i not in self.by_id]
        if unknown:  # only our own registrations can come back: a broken invariant, not a busy branch
            raise BranchClaimError(f"luigid at {self.url} handed branch claims of {self.family} tasks this run did "
                                   f"not register ({', '.join(unknown[:3])}): is another process using the "
                                   f"claims worker id {self.worker}?")
        if batch is not None:
            params = {"workflow": self.workflow.task_id,
                      "branches": describe_numbers([self.by_id[i].branch for i in ids])}
            self._call("add_task", worker=self.worker, task_id=self.claim_task_id(batch), status="RUNNING",
                       batch_id=batch, runnable=False, family=f"{self.family}{CLAIMS_SUFFIX}", params=params)
            self.unended[batch] = set(ids)
        self.batch_of.update(dict.fromkeys(ids, batch))
        return ids

    def claim_task_id(self, batch: str) -> str:
        return f"{self.family}{CLAIMS_SUFFIX}_{batch}"

    def release(self, task_id: str, ok: bool, explanation: str = "") -> None:
        """End the claim of a branch: ``DONE`` (made here or found complete) or ``FAILED``.

        The DONE ones of a batch are released together, by the claim task, once the last
        branch of the batch ended.
        """
        batch = self.batch_of.pop(task_id, None)  # None too for a branch this run never claimed
        if batch is None or not ok:
            self._call("add_task", worker=self.worker, task_id=task_id, status="DONE" if ok else "FAILED",
                       runnable=False, expl=explanation[-10_000:] if explanation else None)
        if batch is not None:
            self.unended[batch].discard(task_id)
            if not self.unended[batch]:
                del self.unended[batch]
                self._call("add_task", worker=self.worker, task_id=self.claim_task_id(batch), status="DONE",
                           runnable=False)

    def held_elsewhere(self, task_ids: Iterable[str]) -> dict[str, str]:
        """``{task id: holder worker}`` of the given branches that another worker holds now.

        ``"DISABLED"`` as the holder: luigid disabled the branch after too many failures
        (``[scheduler] retry_count``), so it will never hand it out. Three ``task_list``
        calls (running, batch-running, disabled tasks of this family); they also make
        luigid prune, so the claims of a dead run expire here, not a minute later.
        """
        wanted, held = set(task_ids), {}
        for status in _HELD:
            listed = self._call("task_list", status=status, upstream_status="", search=self.family)
            if "num_tasks" in listed:  # more than luigid's max_shown_tasks: ask without the limit
                listed = self._call("task_list", status=status, upstream_status="", search=self.family, limit=False)
            for task_id, task in listed.items():
                holder = "DISABLED" if status == "DISABLED" else task.get("worker_running") or ""
                if task_id in wanted and holder != self.worker:
                    held[task_id] = holder
        return held

    # -- plumbing --------------------------------------------------------------------

    def _call(self, method: str, **args: Any) -> Any:
        try:
            return getattr(self.remote, method)(**args)
        except (RPCError, OSError, ValueError) as exc:
            cause = getattr(exc, "sub_exception", None) or exc
            raise BranchClaimError(
                f"the central scheduler (luigid) at {self.url} did not answer {method} for the branches of "
                f"{self.family}: {cause}. No further branch is claimed, because without luigid this run cannot "
                f"know whether another run (on any machine) holds it; the branches it had claimed are finished. "
                f"Rerun once luigid is reachable, or with --local-scheduler (branches are then locked on this "
                f"machine only)") from exc

    def _ping(self) -> None:
        while not self.stopping.wait(_PING_EVERY):
            try:
                self.pinger_remote.ping(worker=self.worker)  # type: ignore[attr-defined]
                if self.ping_failures:
                    logger.warning("luigid at %s answers branch-claim pings again", self.url)
                self.ping_failures = 0
            except (RPCError, OSError, ValueError) as exc:
                self.ping_failures += 1
                if self.ping_failures == 1:
                    logger.warning("luigid at %s does not answer the pings that keep this run's branch claims "
                                   "(%s): luigid drops them after its worker_disconnect_delay (60 s by default), "
                                   "and another run may then take those branches", self.url, exc)
