"""Every place where pylaw reads Luigi's private state, and why no public hook serves.

STYLE.md allows reading Luigi's internals only where Luigi offers no public way, and only
here, so that a Luigi upgrade has one module to check:

* :func:`running_worker_processes`: a task cannot ask Luigi how many processes its worker
  runs. ``luigi.build(tasks, workers=N)`` passes N straight to the ``Worker`` object, not
  to the ``[core] workers`` config that ``--workers`` sets; a local workflow that forks
  its branch workers must honour both routes alike. The running ``luigi.worker.Worker``
  is found on the call stack (it stays there in a forked task process too).
"""

from __future__ import annotations

import sys


def running_worker_processes() -> int | None:
    """``worker_processes`` of the Luigi worker running the caller, or None outside a worker."""
    from luigi.worker import Worker

    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Worker):
            return int(candidate.worker_processes)
        frame = frame.f_back  # type: ignore[assignment]
    return None
