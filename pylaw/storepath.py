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
DIGEST_CHARS = 12
#: the shape of a part that carries a digest: ``<readable>-<12 hex>[.<extension>]``
_DIGESTED = re.compile(rf"-[0-9a-f]{{{DIGEST_CHARS}}}(\.[^.]*)?$")


def sanitize_part(value: object) -> str:
    """One path component for ``value``: no separators, no control characters, bounded length.

    A value that is already a safe component is used as it is. Any other value (with a
    separator, a control character, a leading dot, too long, or empty) becomes a readable
    safe form suffixed with a digest of the full value, before its extension (formatters
    pick by extension). So distinct values always give distinct parts: ``mc/2017`` and
    ``mc_2017`` differ, and a safe value can never look like another's digested form,
    because values of that shape are digested too.
    """
    text = str(value)
    part = _UNSAFE.sub("_", text)
    if part.startswith("."):  # no hidden names, no "." or ".."
        part = "_" + part
    part = part or "_"
    encoded = part.encode("utf-8", "surrogateescape")
    if part == text and len(encoded) <= MAX_PART_BYTES and ("-" not in part or not _DIGESTED.search(part)):
        return part
    digest = hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:DIGEST_CHARS]
    stem, extension = os.path.splitext(part)
    if not 1 < len(extension) <= 16:
        stem, extension = part, ""
    keep = MAX_PART_BYTES - DIGEST_CHARS - 1 - len(extension.encode("utf-8", "surrogateescape"))
    head = stem.encode("utf-8", "surrogateescape")[:keep].decode("utf-8", "ignore")
    return f"{head}-{digest}{extension}"


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
