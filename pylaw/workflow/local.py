"""LocalWorkflow: run a workflow's branches in this process (or forked workers).

Luigi's scheduler costs grow with the number of pending tasks, so branches are not
scheduled one by one: the workflow task itself finds the missing branches (one listing
per output directory), and runs them directly, with ``--workers`` forked processes.
Luigi semantics are kept where they matter: each branch is a real task instance, its
requirements are checked (missing ones are handed to Luigi as dynamic dependencies),
its events fire, its outputs are verified, and failures are reported per branch.
"""

from __future__ import annotations

import inspect
import logging
import multiprocessing
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import luigi
from luigi.task import flatten

from pylaw.errors import BranchFailuresError
from pylaw.luigi_private import running_worker_processes
from pylaw.target.local import finish_directory_outputs
from pylaw.workflow.base import BaseWorkflow, WorkflowProxy, describe_numbers

logger = logging.getLogger("pylaw.workflow")

# Branch tasks handed to forked worker processes (inherited through fork, never pickled).
_FORKED_BRANCHES: Sequence[Any] = ()


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


def _run_forked(index: int) -> tuple[int, str | None]:
    return index, run_branch(_FORKED_BRANCHES[index])


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
        failures = self.execute(branches)
        if failures:
            first = min(failures)
            raise BranchFailuresError(
                f"{len(failures)} of {len(branches)} branches of {task.get_task_family()} failed: "
                f"{describe_numbers(list(failures))}. First failure (branch {first}):\n{failures[first]}",
                failures)

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
        """Run the branches; returns ``{branch: traceback}`` of the failed ones."""
        workers = max(1, min(self.worker_count(), len(branches)))
        failures: dict[int, str] = {}
        progress = Progress(self.task, len(branches))
        for index, error in self.results(branches, workers):
            if error is not None:
                failures[branches[index].branch] = error
                logger.error("branch %d of %s failed:\n%s", branches[index].branch, self.task, error)
            progress.step(failed=error is not None)
        progress.report()
        return failures

    @staticmethod
    def worker_count() -> int:
        """Branch processes: those of the Luigi worker running the workflow (``luigi.build(...,
        workers=N)`` and ``--workers N`` alike), or ``[core] workers`` outside a worker."""
        return running_worker_processes() or luigi.interface.core().workers

    @staticmethod
    def results(branches: Sequence[Any], workers: int) -> Iterator[tuple[int, str | None]]:
        if workers == 1:
            for index, branch in enumerate(branches):
                yield index, run_branch(branch)
            return
        global _FORKED_BRANCHES
        _FORKED_BRANCHES = branches
        try:
            chunk = max(1, len(branches) // (workers * 16))
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                yield from pool.imap_unordered(_run_forked, range(len(branches)), chunksize=chunk)
        finally:
            _FORKED_BRANCHES = ()


class Progress:
    """Reports branch progress to the scheduler, at most once per second."""

    def __init__(self, task: Any, total: int) -> None:
        self.task, self.total, self.done, self.failed = task, total, 0, 0
        self.last_report = 0.0

    def step(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        if time.monotonic() - self.last_report >= 1.0:
            self.report()

    def report(self) -> None:
        self.last_report = time.monotonic()
        percent = 100 if not self.total else int(100 * self.done / self.total)
        # Luigi's worker injects these callbacks; they are None outside a worker
        if callable(self.task.set_progress_percentage):
            self.task.set_progress_percentage(percent)
        if callable(self.task.set_status_message):
            self.task.set_status_message(f"branches: {self.done}/{self.total} done, {self.failed} failed")


class LocalWorkflow(BaseWorkflow):
    """Run the branches locally: ``--workflow local`` or ``--local``."""

    workflow_type: ClassVar[str | None] = "local"
    workflow_proxy_cls: ClassVar[type[WorkflowProxy]] = LocalWorkflowProxy
