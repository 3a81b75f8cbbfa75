"""Progress of a remote workflow's poll loop, where people and logs see it.

* Under ``pyl`` on a terminal the workflow is a row of the run's board
  (:mod:`pylaw.progress`): a bar with its branch counts and the jobs' states, next to
  the rows of local workflows, with log records scrolling above;
* with no board but a terminal on standard error (``luigi --module`` in a terminal): a
  line of its own, redrawn in place (:class:`pylaw.terminal.StatusLine`);
* otherwise (a log file, CI, a batch job): each poll's line on standard output, as
  plain text, when it changed or ``[pylaw] progress_interval`` seconds have passed since
  the last, so a long wait adds a line per interval, not one per poll.

Nothing here asks the batch system: it shows what the poll loop has just learnt.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from pylaw import config, terminal
from pylaw.interactive import describe_task
from pylaw.job.poll import JobPoller
from pylaw.job.state import RecordStatus
from pylaw.progress import BAR_CELLS, current_board, quiet


class PollProgress:
    """Shows one remote workflow's poll rounds (see the module docstring)."""

    def __init__(self, task: Any) -> None:
        self.task = task
        self.label = f"{task.get_task_family()}[{task.task_id.rpartition('_')[2][:6]}]"
        self.board = current_board()  # collects the final report even where it draws nothing
        self.drawn = self.board is not None and self.board.tty and not quiet()
        self.line = terminal.StatusLine(sys.stderr) if not self.drawn and terminal.isatty(sys.stderr) else None
        self.printed, self.printed_at = "", 0.0
        self.total = self.done = 0
        self.failed: list[int] = []

    def show(self, poller: JobPoller, line: str) -> None:
        """One poll round: ``line`` is the round's plain summary."""
        branches = set(poller.branches)
        done = poller.existing_branches & branches
        self.total, self.done, self.failed = len(branches), len(done), poller.failed_branches()
        running = {b for r in poller.state.records(RecordStatus.RUNNING) for b in r.branches} - done
        counts = poller.state.counts()
        jobs = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
        if self.drawn and self.board is not None:
            self.board.send(("update", self.task.task_id, self.label, self.total, self.done, len(self.failed), 0,
                             len(running), f"{poller.state.workflow_type} jobs: {jobs or 'none'}"))
        elif self.line is not None:
            drawn = terminal.bar(self.total, self.done, len(self.failed), len(running), BAR_CELLS)
            self.line.show(line, f"{self.label} {drawn} {terminal.fit(line, terminal.width(sys.stderr) - 40)}")
        elif line != self.printed or time.monotonic() - self.printed_at >= config.section().progress_interval:
            print(line, flush=True)
            self.printed, self.printed_at = line, time.monotonic()

    def close(self) -> None:
        """The loop ended: the board's row (if any) becomes a line of the run's summary."""
        if self.line is not None:
            self.line.close()
        if self.board is not None:
            self.board.send(("end", {"task_id": self.task.task_id, "task": describe_task(self.task), "family":
                                     self.task.get_task_family(), "total": self.total, "done": self.done,
                                     "failed": self.failed, "elsewhere": [], "holders": [], "log": "",
                                     "where": "by jobs"}), wait=True)
