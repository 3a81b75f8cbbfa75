"""Running tasks from ``pyl``: progress, signals, the summary at the end and the exit code.

:mod:`pylaw.cli.main` maps Luigi's status to an exit code; on top of it, this module
returns the "held by someone else" code when Luigi's pid lock refuses the run (the same
command runs already on this machine, its pid is named) or when another worker of luigid
ran a task of it while this run found nothing else to do (the worker is named), and
``128 + signal`` (130, 143) when SIGINT / SIGTERM stopped the run (every branch worker
stopped first, see :mod:`pylaw.processes`).
"""

from __future__ import annotations

import collections
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

import luigi
from luigi.cmdline_parser import CmdlineParser

from pylaw.interactive import describe_task
from pylaw.luigi_private import pid_lock_holders, run_partition
from pylaw.processes import Interrupted, handle_signals
from pylaw.progress import close_board, open_board, quiet
from pylaw.workflow.base import describe_numbers


def execute(argv: Sequence[str], status_code: Callable[[luigi.LuigiStatusCode], int], held: int,
            err: IO[str] | None = None) -> int:
    """``luigi.run(argv)`` with pyl's progress board and signal handling; returns the exit code.

    ``status_code`` maps Luigi's status of the run to an exit code; ``held`` is the code of
    a run whose work someone else holds.
    """
    err = err or sys.stderr
    with CmdlineParser.global_instance(list(argv)):
        silent = quiet()
        pid_dir = luigi.interface.core().lock_pid_dir
    open_board(err, draw=not silent)
    try:
        with handle_signals():
            result = luigi.run(list(argv), detailed_summary=True)
    except luigi.interface.PidLockAlreadyTakenExit:
        close_board()
        holders = ", ".join(map(str, pid_lock_holders(pid_dir))) or "unknown"
        print(f"pylaw: already running: the same command runs in process {holders} (Luigi's pid lock in "
              f"{pid_dir}); wait for it to finish, or pass --no-lock to run anyway", file=err)
        return held
    except Interrupted as exc:
        reports = close_board()
        print(f"pylaw: stopped by {signal_name(exc.signum)}: every branch worker was stopped; the branches "
              f"that were running have no output (a rerun makes them)", file=err)
        if reports:
            print(workflow_lines(reports), file=err)
        return exc.exit_code
    reports = close_board()
    sets, others = run_partition(result)
    code = status_code(result.status)
    if code == 0 and (others or sets.get("run_by_other_worker")):
        code = held  # Luigi calls it a success: this run found its work taken and produced nothing
    if code != 0 or not silent:
        print(summarize(sets, others, reports), file=err)
        if code == held:
            print(f"pylaw: already running elsewhere (exit code {held}): its outputs appear when that run ends",
                  file=err)
    return code


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def summarize(sets: dict[str, set], others: dict[str, set], reports: list[dict[str, Any]]) -> str:
    """The summary of a finished run: what ran, failed, stayed pending, who held what, where the logs are."""
    lines = ["pylaw summary:"]
    ran = collections.Counter(task.get_task_family() for task in sets.get("completed", ()))
    families = ", ".join(f"{family} x{count}" if count > 1 else family for family, count in sorted(ran.items()))
    done = len(sets.get("already_done", ()))
    lines.append(f"  ran:     {sum(ran.values())} task(s) successfully{f' ({families})' if families else ''}, "
                 f"{done} already complete")
    if reports:
        lines.append(workflow_lines(reports))
    for task in sorted(sets.get("failed", ()), key=str):
        log = next((r["log"] for r in reports if r["task_id"] == task.task_id and r["log"]), "")
        lines.append(f"  failed:  {describe_task(task)}" + (f" (branch tracebacks: {log})" if log else ""))
    for key, why in (("upstream_failure", "a requirement failed"),
                     ("upstream_missing_dependency", "a requirement is missing"),
                     ("upstream_run_by_other_worker", "a requirement is run by another worker"),
                     ("still_pending_ext", "an external input is missing")):
        for task in sorted(sets.get(key, ()), key=str):
            lines.append(f"  pending: {describe_task(task)} ({why})")
    for worker_id, tasks in sorted(others.items()):
        for task in sorted(tasks, key=str):
            lines.append(f"  held:    {describe_task(task)} is run by another worker: {worker_id}")
    lines.append(f"  logs:    {log_destinations()}")
    return "\n".join(lines)


def workflow_lines(reports: list[dict[str, Any]]) -> str:
    """One line per workflow that ran branches (a local one here, a remote one by jobs)."""
    lines = []
    for r in reports:
        failed, elsewhere = r["failed"], r["elsewhere"]
        done = r.get("done", r["total"] - len(failed) - len(elsewhere))  # remote workflows say it themselves
        parts = [f"{done} done {r.get('where', 'here')}"]
        if failed:
            parts.append(f"{len(failed)} failed: {describe_numbers(failed)}")
        if elsewhere:
            by = ", ".join(map(str, r["holders"])) or "another process"
            parts.append(f"{len(elsewhere)} made by another run (pid {by}): {describe_numbers(elsewhere)}")
        lines.append(f"  branches of {r['task']}: {r['total']} to run, {', '.join(parts)}")
    return "\n".join(lines)


def log_destinations() -> str:
    """Where Luigi's and pylaw's log records went: files of file handlers, else standard error."""
    files: list[str] = []
    stderr = False
    for lg in (logging.getLogger(), logging.getLogger("luigi-interface"), logging.getLogger("pylaw")):
        for handler in lg.handlers:
            name = getattr(handler, "baseFilename", None)
            if name:
                files.append(str(name))
            elif isinstance(handler, logging.StreamHandler):
                stderr = True
    places = sorted(set(files)) + (["standard error"] if stderr or not files else [])
    return ", ".join(places)
