"""Progress of local workflows on the terminal, and their final reports for the run summary.

A workflow runs its branches in whichever process Luigi runs it (``pyl`` itself, or a
forked task process with ``--workers N``), so progress travels as datagrams on a Unix
socket pair made before the forks, to one :class:`Board` in the process that opened it:
``pyl``, or, under ``luigi --module``, the workflow's own process. The board draws

* on a terminal: one line per running workflow (done/total, failed, rate, ETA), redrawn
  in place; log records of every process go through the board too (their handlers'
  streams are routed), so they scroll above the lines instead of tearing them;
* otherwise: one plain line per running workflow every ``[pylaw] progress_interval``
  seconds (default 5), the first after one interval, so short runs print nothing.

``--quiet`` (``[progress] quiet``) turns it off. A workflow sends at most five updates a
second, without blocking (an update the socket cannot take is dropped), so the branch
loop pays a clock read per branch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any

import luigi

from pylaw import config, terminal
from pylaw.interactive import describe_task

_UPDATE_EVERY = 0.2  # seconds between a workflow's updates (and a terminal's redraws)
_MAX_DATAGRAM = 60_000
BAR_CELLS = 20  # cells of a row's bar on a terminal (the drawing: pylaw.terminal)


class progress(luigi.Config):  # noqa: N801 - the class name is the config section name
    """Progress display: a global option (``--quiet``) for ``pyl`` and ``luigi --module`` alike."""

    use_cmdline_section = False

    quiet = luigi.BoolParameter(default=False, description="no progress lines and no summary of a successful run")


def quiet() -> bool:
    return bool(progress().quiet)


def interval() -> float:
    """``[pylaw] progress_interval``: seconds between plain progress lines (no terminal)."""
    return float(config.section().progress_interval)


@dataclass
class Row:
    """What the board knows about one running workflow."""

    label: str
    total: int
    done: int = 0
    failed: int = 0
    waiting: int = 0
    running: int = 0
    detail: str = ""  # e.g. a remote workflow's job counts
    started: float = field(default_factory=time.monotonic)

    def text(self, width: int = 0, bar: bool = False) -> str:
        """The row as one line; with ``bar`` (terminals) a coloured bar follows the label."""
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.done}/{self.total} done"]
        for count, word in ((self.running, "running"), (self.failed, "failed"),
                            (self.waiting, "waiting for another run")):
            if count:
                parts.append(f"{count} {word}")
        parts.append(f"{rate:.1f}/s")
        if 0 < self.done < self.total and rate > 0:
            parts.append(f"ETA {format_seconds((self.total - self.done) / rate)}")
        counts = ", ".join(parts) + (f" | {self.detail}" if self.detail else "")
        if not bar:
            return terminal.fit(f"{self.label}: {counts}", width)
        drawn = terminal.bar(self.total, self.done, self.failed, self.running, BAR_CELLS)
        return f"{self.label} {drawn} {terminal.fit(counts, width - len(self.label) - BAR_CELLS - 2)}"


def format_seconds(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class _RoutedStream:
    """A stream to the terminal whose text goes through the board (directly, or by datagram from a fork)."""

    def __init__(self, board: Board, original: IO[str]) -> None:
        self.board, self.original, self.buffer = board, original, ""

    def write(self, text: str) -> int:
        self.buffer += text
        if "\n" in text:
            self.flush()
        return len(text)

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding ... of the terminal
        return getattr(self.original, name)

    def flush(self) -> None:
        text, self.buffer = self.buffer, ""
        if text:
            self.board.log(text)


class Board:
    """Receives workflow updates and reports; draws progress (see the module docstring)."""

    def __init__(self, stream: IO[str] | None = None, draw: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.draw = draw  # False (--quiet): only collect the workflows' reports
        self.tty = draw and terminal.isatty(self.stream)
        self.every = _UPDATE_EVERY if self.tty else interval()
        self.owner = os.getpid()
        self.reader, self.writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.rows: dict[str, Row] = {}
        self.reports: list[dict[str, Any]] = []
        self.drawn = 0  # lines of the block on the terminal now
        self.lock = threading.RLock()
        self.routed: list[tuple[logging.StreamHandler, IO[str]]] = []
        self.stderr: IO[str] | None = None  # sys.stderr before it was routed
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="pylaw-progress", daemon=True)

    def start(self) -> Board:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Take the last datagrams, clear the terminal lines, give the log handlers their streams back."""
        self.stopping.set()
        with contextlib.suppress(OSError):
            self.writer.send(pickle.dumps(("wake",)), socket.MSG_DONTWAIT)  # out of its select() now
        self.thread.join(5)
        with self.lock:
            self._drain()
            self._clear()
            for handler, original in self.routed:
                handler.setStream(original)
            self.routed.clear()
            if self.stderr is not None:
                sys.stderr, self.stderr = self.stderr, None
        self.reader.close()
        self.writer.close()

    # -- sending (any process) ---------------------------------------------------------

    def send(self, message: tuple, wait: bool = False) -> None:
        data = pickle.dumps(message)[:_MAX_DATAGRAM] if message[0] != "log" else pickle.dumps(
            ("log", message[1][-_MAX_DATAGRAM // 2:]))
        if os.getpid() == self.owner:
            self._handle(message)
            return
        with contextlib.suppress(OSError):  # the board's process is gone, or the socket full
            self.writer.send(data, 0 if wait else socket.MSG_DONTWAIT)

    def log(self, text: str) -> None:
        self.send(("log", text), wait=True)

    def route_logging(self) -> None:
        """Send what goes to our terminal through the board (this process and later forks).

        ``sys.stderr`` (``print``, warnings, and logging's last-resort handler) and the
        stream handlers that hold the terminal's stream object themselves (Luigi's).
        """
        if not self.tty:
            return
        if not isinstance(sys.stderr, _RoutedStream) and _same_terminal(sys.stderr, self.stream):
            self.stderr, sys.stderr = sys.stderr, _RoutedStream(self, sys.stderr)  # type: ignore[assignment]
        loggers = [logging.getLogger(), *(logging.getLogger(name) for name in ("luigi", "luigi-interface", "pylaw"))]
        for lg in loggers:  # not under self.lock: setStream takes the handler's lock, emit() holds it
            for handler in lg.handlers:
                stream = getattr(handler, "stream", None)
                if (type(handler) is logging.StreamHandler and stream is not None
                        and not isinstance(stream, _RoutedStream) and _same_terminal(stream, self.stream)):
                    handler.setStream(_RoutedStream(self, stream))
                    self.routed.append((handler, stream))

    # -- receiving and drawing (the board's process) -----------------------------------

    def _loop(self) -> None:
        next_draw = time.monotonic() + self.every
        while not self.stopping.is_set():
            timeout = max(0.0, min(next_draw - time.monotonic(), 0.2))
            if select.select([self.reader], [], [], timeout)[0]:
                with self.lock:
                    self._drain()
            if time.monotonic() >= next_draw:
                with self.lock:
                    self._draw()
                next_draw = time.monotonic() + self.every

    def _drain(self) -> None:
        while True:
            try:
                data = self.reader.recv(_MAX_DATAGRAM + 1024, socket.MSG_DONTWAIT)
            except (BlockingIOError, OSError):
                return
            with contextlib.suppress(pickle.UnpicklingError, EOFError, ValueError):
                self._handle(pickle.loads(data))

    def _handle(self, message: tuple) -> None:
        with self.lock:
            kind = message[0]
            if kind == "update":  # optional at its end: running, detail
                _, key, label, total, done, failed, waiting, *more = message
                row = self.rows.setdefault(key, Row(label, total))
                row.total, row.done, row.failed, row.waiting = total, done, failed, waiting
                row.running = more[0] if more else 0
                row.detail = more[1] if len(more) > 1 else ""
            elif kind == "end":
                self.rows.pop(message[1]["task_id"], None)
                self.reports.append(message[1])
                if self.tty:
                    self._draw()
            elif kind == "log":
                self._clear()
                self.stream.write(message[1])
                self.stream.flush()
                self._draw()

    def _clear(self) -> None:
        if self.tty and self.drawn:
            self.stream.write(f"\x1b[{self.drawn}A\r\x1b[J")
            self.stream.flush()
            self.drawn = 0

    def _draw(self) -> None:
        if not self.draw:
            return
        rows = list(self.rows.values())
        if self.tty:
            width = terminal.width(self.stream)
            self._clear()
            shown = [row for row in rows if time.monotonic() - row.started >= 0.5]  # no flicker on quick runs
            for row in shown:
                self.stream.write(f"{row.text(width, bar=True)}\n")
            self.drawn = len(shown)
        else:
            for row in rows:
                self.stream.write(f"[pylaw] {row.text()}\n")
        self.stream.flush()


def _same_terminal(stream: Any, tty: IO[str]) -> bool:
    try:
        return bool(os.path.sameopenfile(stream.fileno(), tty.fileno()))
    except (AttributeError, OSError, ValueError):
        return False


#: the board of this process, or inherited from the process that forked it
_BOARD: Board | None = None


def open_board(stream: IO[str] | None = None, draw: bool = True) -> Board:
    """Start the board of this run (``pyl`` does, before Luigi forks anything)."""
    global _BOARD
    _BOARD = Board(stream, draw).start()
    return _BOARD


def current_board() -> Board | None:
    """The board of this run (this process's, or inherited from the process that forked it), if any."""
    return _BOARD


def close_board() -> list[dict[str, Any]]:
    """Stop the board; returns the final reports of the workflows that ran."""
    global _BOARD
    board, _BOARD = _BOARD, None
    if board is None:
        return []
    board.stop()
    return board.reports


class WorkflowProgress:
    """Progress of one workflow's branch loop: to the board, and to the scheduler once per second."""

    def __init__(self, task: Any, total: int) -> None:
        self.task, self.total, self.done, self.failed, self.waiting = task, total, 0, 0, 0
        self.last_scheduler = self.last_board = 0.0
        self.own_board = False
        self.board = _BOARD
        if self.board is None and not quiet():
            self.board, self.own_board = open_board(), True  # under `luigi --module`: nobody opened one
        if self.board is not None:
            self.board.route_logging()
        self.label = f"{task.get_task_family()}[{task.task_id.rpartition('_')[2][:6]}]"

    def step(self, failed: bool = False) -> None:
        self.done += 1
        self.failed += failed
        now = time.monotonic()
        if now - self.last_board >= _UPDATE_EVERY:
            self.update(now)

    def update(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.last_board = now
        if self.board is not None:
            self.board.send(("update", self.task.task_id, self.label, self.total, self.done, self.failed,
                             self.waiting))
        if now - self.last_scheduler >= 1.0:
            self.report_to_scheduler()

    def report_to_scheduler(self) -> None:
        self.last_scheduler = time.monotonic()
        percent = 100 if not self.total else int(100 * self.done / self.total)
        # Luigi's worker injects these callbacks; they are None outside a worker
        if callable(self.task.set_progress_percentage):
            self.task.set_progress_percentage(percent)
        if callable(self.task.set_status_message):
            self.task.set_status_message(f"branches: {self.done}/{self.total} done, {self.failed} failed")

    def finish(self, report: dict[str, Any]) -> None:
        """Final scheduler status, and the workflow's report for the run summary."""
        self.report_to_scheduler()
        if self.board is not None:
            self.board.send(("end", {"task_id": self.task.task_id, "task": describe_task(self.task), **report}),
                            wait=True)
        if self.own_board:
            close_board()
