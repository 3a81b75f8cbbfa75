"""LocalWorkflow: run a workflow's branches in this process (or forked workers).

Luigi's scheduler costs grow with the number of pending tasks, so branches are not
scheduled one by one: the workflow task itself finds the missing branches (one listing
per output directory), and runs them directly, with ``--workers`` forked processes.
Luigi semantics are kept where they matter: each branch is a real task instance, its
requirements are checked (missing ones are handed to Luigi as dynamic dependencies),
its events fire, its outputs are verified, and failures are reported per branch.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import multiprocessing
import os
import queue
import socket
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import luigi
from luigi.task import flatten

from pylaw import config, provenance
from pylaw.errors import BranchClaimError, BranchFailuresError
from pylaw.luigi_private import running_worker_processes, running_worker_scheduler_url
from pylaw.processes import as_forked_worker
from pylaw.progress import WorkflowProgress
from pylaw.target.local import finish_directory_outputs
from pylaw.workflow.base import BaseWorkflow, WorkflowProxy, describe_numbers
from pylaw.workflow.branchlock import BranchLocks
from pylaw.workflow.schedulerclaims import BranchClaims

logger = logging.getLogger("pylaw.workflow")

# Branch tasks and their locks handed to forked worker processes (inherited through fork, never pickled).
_FORKED_BRANCHES: Sequence[Any] = ()
_FORKED_LOCKS: BranchLocks | None = None

# What became of a branch: run here (ok or failed), found complete once its lock was
# ours (another run made it), or busy (another process holds its lock; detail: its pid).
OK, FAILED, ELSEWHERE, BUSY = "ok", "failed", "elsewhere", "busy"


def run_branch(task: Any) -> str | None:
    """Run one branch task like a Luigi worker would; return a traceback text on failure."""
    task.trigger_event(luigi.Event.START, task)
    started = time.time()
    try:
        task.run()  # pylaw.Task.run fails when it returns without writing its outputs
        finish_directory_outputs(task)  # Luigi's worker does it in the SUCCESS event, after its own checks
    except Exception as exc:
        task.trigger_event(luigi.Event.FAILURE, task, exc)
        return traceback.format_exc()
    task.trigger_event(luigi.Event.PROCESSING_TIME, task, time.time() - started)
    task.trigger_event(luigi.Event.SUCCESS, task)
    return None


def run_locked(task: Any, locks: BranchLocks | None, wait: bool = False) -> tuple[str, Any]:
    """Run a branch under its lock; ``(outcome, detail)``: the traceback if FAILED, the holder's pid if BUSY."""
    if locks is None:
        error = run_branch(task)
        return (OK, None) if error is None else (FAILED, error)
    if wait:
        locks.lock(task.branch)
    else:
        holder = locks.try_lock(task.branch)
        if holder is not None:
            return BUSY, holder
    try:
        if locks.made(task.branch) and task.complete():  # another run made it while we listed the outputs
            return ELSEWHERE, None
        error = run_branch(task)
        if error is not None:
            return FAILED, error
        locks.mark_made(task.branch)
        return OK, None
    finally:
        locks.unlock(task.branch)


def _run_forked(index: int) -> tuple[int, tuple[str, Any]]:
    return index, run_locked(_FORKED_BRANCHES[index], _FORKED_LOCKS)


class LocalWorkflowProxy(WorkflowProxy):
    """Runs the missing branches of the workflow in this process or forked workers."""

    def run(self) -> Iterator[Any]:
        task = self.task
        task.check_branch_map_ready()  # a pending (empty) output would make this a silent no-op
        todo = [n for n, done in task.branch_completeness().items() if not done]
        branches = [task.as_branch(n) for n in todo]
        if branches and inspect.isgeneratorfunction(type(branches[0]).run):
            # branches with dynamic dependencies need Luigi's scheduler for each of them
            yield branches
            return
        pending = self.incomplete_requirements(branches)
        if pending:
            logger.info("%s: %d requirements of branches are missing, scheduling them", task, len(pending))
            yield pending
        luigi_parent = multiprocessing.parent_process()
        if luigi_parent is not None:  # a task process Luigi forked (--workers N): must not outlive pyl
            as_forked_worker(luigi_parent.pid)
        failures = self.execute(branches)
        if failures:
            first = min(failures)
            last_line = failures[first].rstrip().rpartition("\n")[2]
            raise BranchFailuresError(
                f"{len(failures)} of {len(branches)} branches of {task.get_task_family()} failed: "
                f"{describe_numbers(list(failures))}. First failure (branch {first}): {last_line} "
                f"(tracebacks: logged above and in {failure_log(task)})", failures)

    @staticmethod
    def incomplete_requirements(branches: Sequence[Any]) -> list[Any]:
        """Requirements of the branches that are not complete yet (deduplicated)."""
        seen: dict[str, Any] = {}
        for branch in branches:
            for dep in flatten(branch.requires()):
                if dep.task_id not in seen:
                    seen[dep.task_id] = dep
        return [dep for dep in seen.values() if not dep.complete()]

    def execute(self, branches: Sequence[Any]) -> dict[int, str]:
        """Run the branches; returns ``{branch: traceback}`` of the failed ones.

        A branch whose lock another process holds is left for last: then its lock is
        awaited, and it runs here unless the other run made it meanwhile. Under a central
        scheduler the locks are claims in luigid (:class:`ClaimedRun`), which hold across
        machines; the machine-local lock bytes are for the local scheduler.
        """
        workers = max(1, min(self.worker_count(), len(branches)))
        failures: dict[int, str] = {}
        busy: dict[int, int] = {}
        elsewhere: list[int] = []
        progress = WorkflowProgress(self.task, len(branches))
        url = running_worker_scheduler_url() if branches else None
        locks = BranchLocks(self.task) if branches and url is None else None

        def record(branch: Any, outcome: str, detail: Any) -> None:
            if outcome == BUSY:
                busy[branch.branch] = detail
                progress.waiting = len(busy)
                return
            if outcome == FAILED:
                failures[branch.branch] = detail
                logger.error("branch %d of %s failed:\n%s", branch.branch, self.task, detail)
            elif outcome == ELSEWHERE:
                elsewhere.append(branch.branch)
            if locks is not None:  # forked workers take the locks: at most one branch each runs
                progress.running = max(0, min(workers, len(branches) - progress.done - 1 - len(busy)))
            progress.step(failed=outcome == FAILED)

        if url is not None:
            return self.execute_claimed(branches, workers, url, progress, record, failures, elsewhere)
        # one worker: the branches' provenance records are written a few hundred at a time
        batching = provenance.batched_records() if workers == 1 else contextlib.nullcontext()
        try:
            with batching:
                for index, (outcome, detail) in self.results(branches, workers, locks):
                    record(branches[index], outcome, detail)
            if busy:
                holders = ", ".join(sorted({str(pid) for pid in busy.values() if pid})) or "unknown"
                logger.warning("%s: branch(es) %s are being run by another process (pid %s): waiting for them",
                               self.task, describe_numbers(list(busy)), holders)
                progress.update()
                by_number = {b.branch: b for b in branches}
                for number in sorted(busy):
                    outcome, detail = run_locked(by_number[number], locks, wait=True)
                    progress.waiting -= 1
                    record(by_number[number], outcome, detail)
        finally:
            if locks is not None:
                locks.close()
        self.finish(progress, len(branches), failures, elsewhere, sorted({pid for pid in busy.values() if pid}))
        return failures

    def execute_claimed(self, branches: Sequence[Any], workers: int, url: str, progress: WorkflowProgress,
                        record: Any, failures: dict[int, str], elsewhere: list[int]) -> dict[int, str]:
        """:meth:`execute` under luigid: branches run as their claims are granted."""
        run = ClaimedRun(self.task, branches, workers, url, progress)
        batching = provenance.batched_records() if workers == 1 else contextlib.nullcontext()
        with batching:
            for index, (outcome, detail) in run.results():
                record(branches[index], outcome, detail)
        self.finish(progress, len(branches), failures, elsewhere, sorted(run.holders))
        if run.error is not None:
            raise run.error
        return failures

    def finish(self, progress: WorkflowProgress, total: int, failures: dict[int, str], elsewhere: list[int],
               holders: list[Any]) -> None:
        if failures:
            write_failure_log(self.task, failures)
        progress.running = 0
        progress.finish({"family": self.task.get_task_family(), "total": total,
                         "failed": sorted(failures), "elsewhere": sorted(elsewhere), "holders": holders,
                         "log": failure_log(self.task) if failures else ""})

    @staticmethod
    def worker_count() -> int:
        """Branch processes: those of the Luigi worker running the workflow (``luigi.build(...,
        workers=N)`` and ``--workers N`` alike), or ``[core] workers`` outside a worker."""
        return running_worker_processes() or luigi.interface.core().workers

    @staticmethod
    def results(branches: Sequence[Any], workers: int, locks: BranchLocks | None
                ) -> Iterator[tuple[int, tuple[str, Any]]]:
        if workers == 1:
            for index, branch in enumerate(branches):
                yield index, run_locked(branch, locks)
            return
        global _FORKED_BRANCHES, _FORKED_LOCKS
        _FORKED_BRANCHES, _FORKED_LOCKS = branches, locks
        try:
            chunk = max(1, len(branches) // (workers * 16))
            with multiprocessing.get_context("fork").Pool(
                    workers, initializer=as_forked_worker, initargs=(os.getpid(),)) as pool:
                yield from pool.imap_unordered(_run_forked, range(len(branches)), chunksize=chunk)
        finally:
            _FORKED_BRANCHES, _FORKED_LOCKS = (), None


class ClaimedRun:
    """Runs branches as luigid grants their claims (:mod:`pylaw.workflow.schedulerclaims`).

    The claims live in this process (the one Luigi runs the workflow in); forked workers
    only run branches. A chunk is claimed whenever fewer than two branches per worker
    are in progress, so that overlapping runs share the work. Branches held elsewhere are waited for, polling
    luigid with a growing interval; if luigid stops answering, no further branch is
    claimed, those claimed already run, and ``error`` says why.
    """

    def __init__(self, task: Any, branches: Sequence[Any], workers: int, url: str, progress: WorkflowProgress) -> None:
        self.task, self.branches, self.workers, self.progress = task, branches, workers, progress
        self.index = {branch.task_id: i for i, branch in enumerate(branches)}
        self.open = set(self.index)  # neither ended here nor found made
        self.running: set[str] = set()
        self.finished: queue.SimpleQueue[tuple[int, tuple[str, Any]]] = queue.SimpleQueue()
        chunk = max(2 * workers, math.ceil(len(branches) / 16))  # at most ~16 get_work calls for a lone run
        self.claims = BranchClaims(url, task, branches, chunk)
        self.holders: set[str] = set()
        self.held: set[str] = set()  # held by other workers at the last look
        self.error: BranchClaimError | None = None

    def results(self) -> Iterator[tuple[int, tuple[str, Any]]]:
        global _FORKED_BRANCHES
        _FORKED_BRANCHES = self.branches
        pool = None
        try:
            if self.workers > 1:  # forked before the claims' ping thread starts
                pool = multiprocessing.get_context("fork").Pool(
                    self.workers, initializer=as_forked_worker, initargs=(os.getpid(),))
            try:
                self.claims.start()
                yield from self.loop(pool)
            except BranchClaimError as exc:
                self.error = exc
                while self.running:  # what runs finishes (outputs are atomic); nothing new is claimed
                    yield from self.collect(block=True, release=False)
        finally:
            self.claims.close()
            if pool is not None:
                pool.terminate()
            _FORKED_BRANCHES = ()

    def loop(self, pool: Any) -> Iterator[tuple[int, tuple[str, Any]]]:
        pause = _WAIT_FIRST
        while self.open:
            claimed = self.claims.claim() if len(self.running) < 2 * self.workers else []
            for task_id in claimed:
                yield from self.start(task_id, pool)
            if self.running:
                yield from self.collect(block=not claimed)
            elif not claimed and self.open:
                yield from self.wait_for_others()
                time.sleep(pause)
                pause = min(pause * 1.5, _WAIT_LONGEST)
                continue
            pause = _WAIT_FIRST

    def start(self, task_id: str, pool: Any) -> Iterator[tuple[int, tuple[str, Any]]]:
        index, branch = self.index[task_id], self.branches[self.index[task_id]]
        if branch.complete():  # made by another run after our listing of the outputs
            self.claims.release(task_id, True)
            self.open.discard(task_id)
            yield index, (ELSEWHERE, None)
            return
        self.running.add(task_id)
        self.held.discard(task_id)
        self.progress.running, self.progress.waiting = len(self.running), len(self.held)
        if pool is None:
            self.progress.update()
            self.finished.put(_run_forked(index))
            yield from self.collect(block=False)
        else:
            pool.apply_async(_run_forked, (index,), callback=self.finished.put,
                             error_callback=lambda exc, i=index: self.finished.put((i, (FAILED, repr(exc)))))

    def collect(self, block: bool, release: bool = True) -> Iterator[tuple[int, tuple[str, Any]]]:
        """Results of the branches that ended: waits for one if ``block``, then takes all there are."""
        while True:
            try:
                index, (outcome, detail) = self.finished.get(block=block, timeout=None)
            except queue.Empty:
                return
            block = False
            task_id = self.branches[index].task_id
            self.running.discard(task_id)
            self.open.discard(task_id)
            self.progress.running = len(self.running)
            if release:
                self.claims.release(task_id, outcome == OK, detail if outcome == FAILED else "")
            yield index, (outcome, detail)

    def wait_for_others(self) -> Iterator[tuple[int, tuple[str, Any]]]:
        """Nothing claimable: what others hold is waited for; what they released is taken or found made."""
        held = self.claims.held_elsewhere(self.open)
        self.holders.update(describe_holder(h) for h in held.values() if h and h != "DISABLED")
        self.held = set(held)
        self.progress.waiting = len(held)
        self.progress.update()
        released = sorted(self.open - set(held), key=self.index.__getitem__)
        for task_id in released:
            if self.branches[self.index[task_id]].complete():
                self.claims.release(task_id, True)
                self.open.discard(task_id)
                yield self.index[task_id], (ELSEWHERE, None)
        self.claims.register(t for t in released if t in self.open)  # taken by the next claim
        for task_id in sorted(t for t, h in held.items() if h == "DISABLED"):
            self.open.discard(task_id)
            yield self.index[task_id], (FAILED, f"luigid disabled {task_id} after too many failures ([scheduler] "
                                                 f"retry_count); re-enable it in luigid's visualiser to run it")


#: seconds between the polls of a run waiting for branches that other runs hold: first, longest
_WAIT_FIRST, _WAIT_LONGEST = 0.5, 5.0


def describe_holder(worker: str) -> str:
    """A luigid worker id as ``pid`` (this host) or ``pid on host``: pylaw's claims workers and Luigi's workers."""
    if worker.startswith("pylaw-branches:"):
        _, host, pid, _ = [*worker.split(":"), "", "", ""][:4]
    else:  # Luigi: "Worker(salt=..., workers=1, host=node1, username=..., pid=123)"
        parts = worker.removeprefix("Worker(").removesuffix(")").split(", ")
        fields = dict(part.split("=", 1) for part in parts if "=" in part)
        host, pid = fields.get("host", ""), fields.get("pid", "")
    if not pid:
        return worker
    return pid if host in ("", socket.gethostname()) else f"{pid} on {host}"


def failure_log(task: Any) -> str:
    """Where the tracebacks of a workflow's failed branches are written (the last run's)."""
    return os.path.join(config.store_root(), ".pylaw-logs", f"{task.task_id}.failures.log")


def write_failure_log(task: Any, failures: dict[int, str]) -> None:
    path = failure_log(task)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"# {task}: {len(failures)} failed branches, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        for number in sorted(failures):
            f.write(f"\n## branch {number}\n{failures[number]}")


class LocalWorkflow(BaseWorkflow):
    """Run the branches locally: ``--workflow local`` or ``--local``."""

    workflow_type: ClassVar[str | None] = "local"
    workflow_proxy_cls: ClassVar[type[WorkflowProxy]] = LocalWorkflowProxy
