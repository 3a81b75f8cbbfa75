"""Signals and forked worker processes: no branch worker outlives the command that started it.

A local workflow forks processes twice: Luigi forks one process per running task when
``--workers N > 1``, and the workflow forks its branch workers (``multiprocessing``). A
signal sent to ``pyl`` alone (``kill PID``, a batch system stopping the job) reaches none
of them, and Python's default reaction to SIGTERM ends ``pyl`` without a word: the
workers lived on, orphans still writing outputs. So:

* ``pyl`` turns SIGINT and SIGTERM into :class:`Interrupted`, stops every descendant
  (frozen first, so none can fork a replacement while the others are killed, then killed
  and waited for) and exits with ``128 + signal`` (130, 143), see :func:`handle_signals`;
* every forked worker asks the kernel to kill it when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``, Linux), which also covers a ``pyl`` killed by SIGKILL, and
  ignores SIGINT: Ctrl-C reaches the whole process group, and the parent, not each
  worker with its own traceback, decides what happens (:func:`as_forked_worker`).

Killing a writer never leaves a complete-looking output: pylaw's targets write to a
temporary sibling and rename it into place on success.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import time
from collections.abc import Iterator
from types import FrameType

_PR_SET_PDEATHSIG = 1
_STOPPING = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached ``pyl``.

    A KeyboardInterrupt: Luigi's worker treats any other exception raised while a task
    runs in its own process (``--workers 1``) as that task's failure, and goes on.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    # a second signal while stopping must not interrupt the clean-up itself
    for sig in _STOPPING:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted`; on it, descendants are stopped.

    Must be entered in the main thread (Python delivers signals there).
    """
    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in _STOPPING}
    try:
        yield
    except Interrupted:
        stop_descendants()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def as_forked_worker(parent: int | None = None) -> None:
    """Set up a forked worker process: killed with its parent, deaf to Ctrl-C (the parent handles it).

    SIGTERM gets its default back (it ends the process at once): a handler inherited
    from ``pyl`` would turn the pool's own ``terminate()`` into tracebacks.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(parent)


def die_with_parent(parent: int | None = None) -> bool:
    """Ask the kernel for SIGKILL when the parent process ends; False where that is not available.

    ``parent`` is the pid the caller was forked from (default: the current parent): if it
    has already ended, the request came too late, and the process ends now.
    """
    expected = os.getppid() if parent is None else parent
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != expected:  # the parent died before the request: nobody would send the signal
        os.kill(os.getpid(), signal.SIGKILL)
    return True


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's), from ``/proc``; empty where ``/proc`` lacks them."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(p) for p in f.read().split())
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, parents before their children."""
    found: list[int] = []
    pending = children(pid)
    while pending:
        child = pending.pop(0)
        if child not in found:
            found.append(child)
            pending.extend(children(child))
    return found


def stop_descendants(timeout: float = 5.0) -> list[int]:
    """Kill every descendant of this process and wait until they are gone; returns their pids.

    They are frozen (SIGSTOP) first, from the top down and until no new one appears, so a
    worker pool cannot replace a killed worker while its siblings are being killed.
    """
    frozen: list[int] = []
    while True:
        fresh = [pid for pid in descendants(os.getpid()) if pid not in frozen]
        if not fresh:
            break
        for pid in fresh:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
            frozen.append(pid)
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    for pid in frozen:
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.01)
    return frozen


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs: reaps it if it is our child; a zombie of someone else counts as ended."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
