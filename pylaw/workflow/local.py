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
import multiprocessing
import os
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import luigi
from luigi.task import flatten

from pylaw import config, provenance
from pylaw.errors import BranchFailuresError
from pylaw.luigi_private import running_worker_processes
from pylaw.processes import as_forked_worker
from pylaw.progress import WorkflowProgress
from pylaw.target.local import finish_directory_outputs
from pylaw.workflow.base import BaseWorkflow, WorkflowProxy, describe_numbers
from pylaw.workflow.branchlock import BranchLocks

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
        awaited, and it runs here unless the other run made it meanwhile.
        """
        workers = max(1, min(self.worker_count(), len(branches)))
        failures: dict[int, str] = {}
        busy: dict[int, int] = {}
        elsewhere: list[int] = []
        progress = WorkflowProgress(self.task, len(branches))
        locks = BranchLocks(self.task) if branches else None

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
            progress.step(failed=outcome == FAILED)

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
        if failures:
            write_failure_log(self.task, failures)
        progress.finish({"family": self.task.get_task_family(), "total": len(branches),
                         "failed": sorted(failures), "elsewhere": sorted(elsewhere),
                         "holders": sorted({pid for pid in busy.values() if pid}),
                         "log": failure_log(self.task) if failures else ""})
        return failures

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
