"""Drawing on a terminal: colours by status, progress bars, one line redrawn in place.

Every escape sequence pylaw writes is made here; the rest of pylaw decides *what* to
show (counts, states) and asks this module *how*. Plain ANSI, no library: the sequences
used (SGR colours, carriage return, erase-to-end-of-line) are understood by every
terminal emulator in use, and a dependency for a dozen lines of drawing would be one more
thing to install on every worker node that imports pylaw.

Nothing is drawn unless the stream is a terminal: logs, pipes and CI get plain text with
the same counts, and never a colour code or a carriage return.
"""

from __future__ import annotations

import os
import threading
import time
from typing import IO

#: SGR colour per status word (the same words in ``pylaw status``, ``pylaw graph`` and bars)
COLOURS = {
    "complete": "32", "done": "32",          # green
    "partial": "33",                          # yellow
    "running": "36",                          # cyan
    "failed": "31", "given_up": "31",         # red
    "missing": "2", "pending": "2",           # dim
    "waiting": "35",                          # magenta
}
#: the glyphs of a bar: done, running, failed, the rest
GLYPHS = ("█", "▓", "█", "░")


def isatty(stream: IO[str] | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed, or no isatty (a StringIO subclass may lack it)
        return False


def width(stream: IO[str] | None, default: int = 100) -> int:
    """Columns of the terminal behind ``stream``, ``default`` when it has none."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError):
        return default
    return columns or default  # a terminal whose size was never set (a fresh pty) says 0


def paint(text: str, status: str, colour: bool = True) -> str:
    """``text`` in the colour of ``status`` (unchanged without ``colour`` or for an unknown status)."""
    code = COLOURS.get(status)
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text


def bold(text: str, colour: bool = True) -> str:
    return f"\x1b[1m{text}\x1b[0m" if colour else text


def bar(total: int, done: int, failed: int = 0, running: int = 0, size: int = 20, colour: bool = True) -> str:
    """A bar of ``size`` cells: done (green), running (cyan), failed (red), the rest (dim).

    Each part gets its share of cells, rounded down, but at least one cell when it is
    not empty: one failed branch in 10,000 must still show.
    """
    if total <= 0 or size <= 0:
        return GLYPHS[3] * max(size, 0)
    cells = []
    left = size
    for count in (done, running, failed):
        n = 0 if count <= 0 else min(left, max(1, size * count // total))
        cells.append(n)
        left -= n
    if done >= total:  # rounding must not leave a complete bar looking unfinished
        cells = [size, 0, 0]
        left = 0
    parts = zip(GLYPHS, (*cells, left), ("done", "running", "failed", "pending"), strict=True)
    return "".join(paint(glyph * n, status, colour) for glyph, n, status in parts if n)


def fit(text: str, columns: int) -> str:
    """``text`` cut to fewer than ``columns`` characters (a full line would wrap and break redrawing).

    Only for text without escape sequences: cut before painting.
    """
    return text[:columns - 1] if columns > 0 and len(text) >= columns else text


class StatusLine:
    """One line of progress: redrawn in place on a terminal, else plain lines, rate-limited.

    On a terminal :meth:`show` redraws at most ``redraw`` times a second. Without one,
    a line is printed at most every ``interval`` seconds, the first after one interval,
    so a short transfer prints nothing into a log and a long one a line per interval,
    and :meth:`close` prints the last state if lines were printed and it was not.
    """

    def __init__(self, stream: IO[str], interval: float = 5.0, redraw: float = 5.0,
                 tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = isatty(stream) if tty is None else tty
        self.every = 1.0 / redraw if self.tty else interval
        self.last_shown = -float("inf") if self.tty else time.monotonic()
        self.shown = self.pending = ""
        self.pending_drawn: str | None = None
        self.lock = threading.Lock()

    def show(self, plain: str, drawn: str | None = None) -> None:
        """Show ``plain`` (on a terminal ``drawn`` instead, if given: with bar and colours)."""
        with self.lock:
            self.pending, self.pending_drawn = plain, drawn
            now = time.monotonic()
            if now - self.last_shown < self.every or plain == self.shown:
                return
            self.last_shown = now
            self._write()

    def _write(self) -> None:
        self.shown = self.pending
        if self.tty:
            drawn = self.pending_drawn
            self.stream.write(f"\r\x1b[K{drawn if drawn is not None else fit(self.pending, width(self.stream))}")
        else:
            self.stream.write(f"{self.pending}\n")
        self.stream.flush()

    def close(self) -> None:
        """The last state (on a terminal on its own line: the cursor moves to the next one)."""
        with self.lock:
            if self.pending != self.shown and (self.tty or self.shown):
                self._write()
            if self.tty and self.shown:
                self.stream.write("\n")
            self.stream.flush()
            self.shown = self.pending = ""
