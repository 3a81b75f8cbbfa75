"""Progress of transfers: one event per file started and per file finished, for bars and logs.

The protocol is a plain callable, ``callback(event: TransferEvent) -> None``, passed as
``progress=`` to :func:`~pylaw.target.remote.transfer.copy_many` (and
:meth:`~pylaw.target.remote.filesystem.RemoteFileSystem.copy_many`, :func:`~pylaw.target.remote.transfer.fetch`,
:func:`~pylaw.target.remote.transfer.upload`). For every file of a batch it is called
once when the file's first attempt starts (``ok`` None, ``bytes_done`` 0) and once when
the file is final (``ok`` True or False; retried attempts in between are not events);
each event also carries the batch's counts, so a bar needs no state of its own:

- ``bytes_done`` / ``bytes_total``: of this file (``bytes_total`` None where the size is
  not known before the transfer: downloads and copies until they end);
- ``files_done`` / ``files_failed`` / ``files_total``: of the batch, this event included.

Between the two, a file may get events with ``ok`` None and a growing ``bytes_done``:
bytes moved so far, where the interface reports them (GFAL2's root:// plugin and XrdCl's
interface do; GFAL2's http and file plugins do not, nor a call that runs in a storage
agent). An interface reports them to :func:`byte_reporter` during its ``copy``.

Calls come from the transfer threads, one at a time (pylaw holds a lock around them), in
an order where ``files_done`` never decreases; a callback must return quickly and must not
raise (an exception is logged and the callback is not called again for that batch).
``progress=True`` uses :class:`ProgressBar` on stderr, drawn as on a terminal; None (the
default) draws it on a terminal and prints plain lines into logs; False shows nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, Protocol

from pylaw import terminal

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TransferEvent:
    """One file started (``ok`` None) or finished (``ok`` True/False), with the batch's counts."""

    source: str
    destination: str
    ok: bool | None
    bytes_done: int
    bytes_total: int | None
    files_done: int
    files_failed: int
    files_total: int
    label: str = ""


class ProgressCallback(Protocol):
    """The callback protocol: any callable taking one :class:`TransferEvent` (a function will do)."""

    def __call__(self, event: TransferEvent) -> None: ...


class ProgressBar:
    """Progress of a batch on standard error, as a ProgressCallback: a bar on a terminal, plain lines in logs.

    ``enabled=None`` (the default) draws on a terminal and prints a plain line every
    ``[pylaw] progress_interval`` seconds otherwise (none for a transfer shorter than
    that); ``True`` draws as on a terminal whatever the stream, ``False`` shows nothing.
    The drawing is :class:`pylaw.terminal.StatusLine`'s.
    """

    def __init__(self, stream: IO[str] | None = None, enabled: bool | None = None) -> None:
        from pylaw import config  # Luigi's config: not imported by the interfaces (nor their storage agents)

        self.enabled = enabled is not False
        self.line = terminal.StatusLine(stream or sys.stderr, interval=config.section().progress_interval,
                                        tty=True if enabled else None)

    def __call__(self, event: TransferEvent) -> None:
        if not self.enabled or event.ok is None or not event.files_total:
            return
        good = event.files_done - event.files_failed
        counts = f"{good}/{event.files_total}" + (f", {event.files_failed} failed" if event.files_failed else "")
        drawn = terminal.bar(event.files_total, good, event.files_failed, size=30,
                             colour=terminal.isatty(self.line.stream))
        self.line.show(f"{event.label}: {counts} files", f"{event.label} {drawn} {counts}")

    def close(self) -> None:
        if self.enabled:
            self.line.close()


class BatchProgress:
    """The counts of one batch, turned into events for its callback (thread-safe)."""

    def __init__(self, callback: ProgressCallback | None, total: int, label: str) -> None:
        self.callback, self.total, self.label = callback, total, label
        self.done = self.failed = 0
        self._started: set[int] = set()
        self._lock = threading.Lock()

    def started(self, index: int, source: str, destination: str, size: int | None) -> None:
        with self._lock:
            if index in self._started:
                return
            self._started.add(index)
            self._emit(TransferEvent(source, destination, None, 0, size, self.done, self.failed, self.total,
                                     self.label))

    def moved(self, index: int, source: str, destination: str, done: int, size: int | None) -> None:
        """File ``index`` has moved ``done`` bytes (reported by the interface during the copy)."""
        with self._lock:
            if index in self._started and done > 0:
                self._emit(TransferEvent(source, destination, None, done, size, self.done, self.failed,
                                         self.total, self.label))

    def finished(self, source: str, destination: str, ok: bool, size: int | None) -> None:
        with self._lock:
            self.done += 1
            self.failed += not ok
            self._emit(TransferEvent(source, destination, ok, (size or 0) if ok else 0, size, self.done, self.failed,
                                     self.total, self.label))

    def _emit(self, event: TransferEvent) -> None:
        if self.callback is None:
            return
        try:
            self.callback(event)
        except Exception:
            logger.exception("the progress callback %r failed; it is not called again in this batch",
                             self.callback)
            self.callback = None


_byte_reporter: contextvars.ContextVar[Callable[[int], None] | None] = contextvars.ContextVar(
    "pylaw_byte_reporter", default=None)


@contextlib.contextmanager
def reporting_bytes(report: Callable[[int], None]) -> Iterator[None]:
    """Within the block, this thread's copies report bytes moved to ``report`` (see :func:`byte_reporter`)."""
    token = _byte_reporter.set(report)
    try:
        yield
    finally:
        _byte_reporter.reset(token)


def byte_reporter() -> Callable[[int], None] | None:
    """What an interface's ``copy`` calls with the bytes moved so far, or None: nobody asks.

    Set by batch transfers around each file (a context variable: per thread); a storage
    agent's process has none, so calls that run there report no bytes.
    """
    return _byte_reporter.get()


def make_callback(progress: bool | ProgressCallback | None) -> tuple[ProgressCallback | None, ProgressBar | None]:
    """The callback for a ``progress=`` argument, and the bar to close at the end (if pylaw's own)."""
    if callable(progress):
        return progress, None
    bar = ProgressBar(enabled=progress)
    return (bar, bar) if bar.enabled else (None, None)
