"""Console-script entry points of ``pylaw`` and ``pyl``.

Importing Luigi reads its config files and raises on a malformed one, before any of
pylaw's code runs; this module imports Luigi (through :mod:`pylaw.cli.main`) only inside
a handler, so the mistake is reported as one line with exit code 2, not a traceback.
"""

from __future__ import annotations

import configparser
import sys
from collections.abc import Callable


def _guarded(name: str) -> Callable[[], None]:
    def entry() -> None:
        try:
            from pylaw.cli import main
        except configparser.Error as exc:
            print(f"pylaw: error: malformed configuration: {' '.join(str(exc).split())}", file=sys.stderr)
            sys.exit(2)
        getattr(main, name)()

    return entry


entry_main = _guarded("entry_main")
entry_pyl = _guarded("entry_pyl")
