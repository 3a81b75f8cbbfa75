"""``pylaw shifts MODULE TASK [--param value ...]``: the shift table of a task chain.

The table is resolved from the task's actual requirements, like a run: the task is built
(``--version`` defaults to a placeholder, it does not change the chain), nothing runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import luigi
from luigi.cmdline_parser import CmdlineParser

from pylaw.errors import PylawError, TaskNotFoundError
from pylaw.shift import NOMINAL, ShiftTask, known_shifts, nominal_of, shift_requirements, shift_role

#: ``--version`` used when none is given: the chain does not depend on it
PLACEHOLDER_VERSION = "shift-table"


def load_task_class(module: str, name: str) -> type:
    """The task class ``name`` of ``module``."""
    cls = getattr(importlib.import_module(module), name, None)
    if not isinstance(cls, type):
        raise TaskNotFoundError(f"module {module!r} defines no task {name!r}")
    return cls


def build_task(cls: type, params: Sequence[str]) -> Any:
    """An instance of ``cls`` from command-line parameters (``--n-chunks 2 ...``)."""
    argv = [cls.get_task_family(), *params]  # type: ignore[attr-defined]
    if "--version" not in params and hasattr(cls, "version"):
        argv += ["--version", PLACEHOLDER_VERSION]
    try:
        with CmdlineParser.global_instance(argv) as parser:
            return parser.get_task_obj()
    except SystemExit as exc:  # argparse has printed what it did not understand
        raise PylawError(f"cannot build {cls.__name__} for the shift table: unknown parameters "
                         f"{' '.join(params)!r} (see the usage above)") from exc
    except (luigi.parameter.ParameterException, ValueError) as exc:
        raise PylawError(f"cannot build {cls.__name__} for the shift table: {exc}; give its parameters "
                         f"after the task name (pylaw shifts MODULE TASK --param value ...)") from exc


def chain(task: Any) -> list[Any]:
    """One representative instance per task class of the requirement tree, upstream first."""
    seen: set[type] = set()
    ordered: list[Any] = []

    def visit(current: Any) -> None:  # post-order: every task after what it requires
        if type(current) in seen:
            return
        seen.add(type(current))
        representative = nominal_of(current) if isinstance(current, ShiftTask) else current
        for requirement in shift_requirements(representative):
            visit(requirement)
        ordered.append(representative)

    visit(task)
    return ordered


def shift_table(task: Any) -> str:
    """Rows: shifts; columns: tasks from upstream to ``task``; cells: implements/inherits/nominal.

    A task without a shift of its own that requires shifted variations of its inputs (an
    inference, say) is shown as ``combines``.
    """
    tasks = chain(task)
    header = ["shift", *(type(t).__name__ for t in tasks)]
    rows = [header]
    for shift in known_shifts():
        rows.append([shift, *(_cell(t, shift) for t in tasks)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _cell(task: Any, shift: str) -> str:
    if isinstance(task, ShiftTask):
        return shift_role(task, shift)
    combined = any(isinstance(r, ShiftTask) and r.shift != NOMINAL for r in shift_requirements(task))
    return "combines" if combined else NOMINAL
