"""Writing JDL, the job description language of CREAM (and the gLite WMS).

A JDL file is a ClassAd: ``[ Name = value; ... ]``. pylaw writes only three kinds of
value: string literals, lists of string literals, and integers. A string literal is
double-quoted with ClassAd's escapes (``\\"`` and ``\\\\``); a value with a control
character (a line break above all) is refused, because the CE's JDL parser and the
shells behind it (BLAH hands some attributes to the LRMS submit script) treat them
differently. Requirement expressions are written as string literals too
(``CERequirements = "..."``), so a configured expression can never end the attribute.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pylaw.errors import JobFileError

#: attribute names pylaw writes (ClassAd names: letters, digits, underscores)
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def string(value: str, what: str) -> str:
    """``value`` as a JDL string literal; control characters are refused (:class:`JobFileError`)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise JobFileError(f"{what} {value!r} contains a control character (a line break?), which a JDL "
                           f"string cannot carry safely; write it on one line")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def string_list(values: Iterable[str], what: str) -> str:
    """``{"a", "b"}``: a JDL list of string literals."""
    return "{" + ", ".join(string(value, what) for value in values) + "}"


def document(attributes: Sequence[tuple[str, str]], comment: str = "") -> str:
    """A JDL file from ``(name, rendered value)`` pairs (values from :func:`string` and friends)."""
    lines = [f"// {line}" for line in comment.splitlines()] + ["["]
    for name, value in attributes:
        if not NAME.fullmatch(name):
            raise JobFileError(f"{name!r} is not a JDL attribute name")
        lines.append(f"  {name} = {value};")
    return "\n".join([*lines, "]"]) + "\n"
