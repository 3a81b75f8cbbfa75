"""Turning parameter values into path parts that cannot escape their store.

Values come from command lines and config files; any of them may contain ``/``, ``..``,
NUL or be kilobytes long. Each becomes exactly one safe path component.
"""

from __future__ import annotations

import hashlib
import os
import re

from pylaw.errors import PathEscapeError

MAX_PART_BYTES = 120
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


def sanitize_part(value: object) -> str:
    """One path component for ``value``: no separators, no control characters, bounded length.

    ``.``/``..`` and leading dots are neutralised; overlong values are cut and suffixed with a
    hash of the full value, so distinct values stay distinct.
    """
    text = str(value)
    part = _UNSAFE.sub("_", text)
    if part.startswith("."):  # no hidden names, no "." or ".."; the extension survives
        part = "_" + part
    if not part:
        part = "_"
    encoded = part.encode("utf-8", "surrogateescape")
    if len(encoded) > MAX_PART_BYTES:
        digest = hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        extension = os.path.splitext(part)[1]  # kept: formatters pick by extension
        extension = extension if len(extension) <= 16 else ""
        keep = MAX_PART_BYTES - 13 - len(extension.encode("utf-8", "surrogateescape"))
        head = encoded[:keep].decode("utf-8", "ignore")
        part = f"{head}-{digest}{extension}"
    return part


def sanitize_relative(path: str) -> str:
    """A relative path given by a task author, each component sanitised (``a/b.json`` stays)."""
    parts = [sanitize_part(p) for p in str(path).split("/") if p not in ("", ".")]
    if not parts:
        raise PathEscapeError(f"empty output path {path!r}")
    return "/".join(parts)


def ensure_inside(root: str, path: str) -> str:
    """Return ``path`` if it lies under ``root``, else raise :class:`PathEscapeError`."""
    if path != root and not path.startswith(root.rstrip("/") + "/"):
        raise PathEscapeError(f"the path {path!r} would leave its store {root!r}")
    return path
