"""``pylaw shifts MODULE TASK``: the shift table of a task chain, computed from classes only."""

from __future__ import annotations

import importlib

from pylaw.errors import TaskNotFoundError
from pylaw.shift import NOMINAL, known_shifts, shift_role, upstream_classes, visible_shifts

SYMBOLS = {"implements": "implements", "inherits": "inherits", NOMINAL: "nominal"}


def load_task_class(module: str, name: str) -> type:
    """The task class ``name`` of ``module``."""
    cls = getattr(importlib.import_module(module), name, None)
    if not isinstance(cls, type):
        raise TaskNotFoundError(f"module {module!r} defines no task {name!r}")
    return cls


def shift_table(cls: type) -> str:
    """Rows: shifts; columns: tasks from upstream to ``cls``; cells: implements/inherits/nominal.

    A task without shifts of its own that requires every variation of its inputs (an
    inference, say) is shown as ``combines``.
    """
    tasks = list(reversed(upstream_classes(cls)))
    shifts = known_shifts()
    header = ["shift", *(t.__name__ for t in tasks)]
    rows = [header]
    for shift in shifts:
        rows.append([shift, *(_cell(t, shift) for t in tasks)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _cell(task: type, shift: str) -> str:
    if not hasattr(task, "shift") and visible_shifts(task):
        return "combines"
    return SYMBOLS[shift_role(task, shift)]
