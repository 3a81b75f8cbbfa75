"""Reads ``allowlist.txt``: Luigi's tests that do not pass against pylaw, each under ``[kind: reason]``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "allowlist.txt")
KINDS = ("environment", "flaky", "pylaw", "skipped")
_HEADER = re.compile(r"\[(\w+): (.+)\]")


@dataclass(frozen=True)
class Entry:
    kind: str
    reason: str


def read(path: str = PATH) -> dict[str, Entry]:
    """Node id -> entry; a malformed line or a repeated node id is an error."""
    entries: dict[str, Entry] = {}
    current: Entry | None = None
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            header = _HEADER.fullmatch(line)
            if header:
                if header[1] not in KINDS:
                    raise ValueError(f"{path}:{number}: unknown kind {header[1]!r} (one of {', '.join(KINDS)})")
                current = Entry(header[1], header[2])
            elif current is None or not line.startswith("test/") or "::" not in line:
                raise ValueError(f"{path}:{number}: expected a [kind: reason] header or a test node id: {line!r}")
            elif line in entries:
                raise ValueError(f"{path}:{number}: {line} is listed twice")
            else:
                entries[line] = current
    return entries


def of_kind(entries: dict[str, Entry], *kinds: str) -> list[str]:
    return [nodeid for nodeid, entry in entries.items() if entry.kind in kinds]
