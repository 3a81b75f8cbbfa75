"""Systematic shifts: each variation is computed as late in the chain as possible.

A :class:`ShiftTask` declares the shifts it implements (``shifts``) and the task classes
it requires (``upstream``). For a requested shift, a task's *effective* shift is that
shift if the task or anything upstream implements it, else ``nominal``. The rewrite
happens before Luigi's instance cache, so ``Selection(shift="jes_up")`` *is*
``Selection(shift="nominal")``: one instance, one task id, one output, never recomputed.

Shift names are ``<source>_up``, ``<source>_down`` or ``nominal``; the analysis declares
its sources once, in code (:func:`register_shift_sources`) or in config
(``[pylaw] shift_sources = jes, jer``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

import luigi

from pylaw.errors import ShiftError
from pylaw.task import Task

NOMINAL = "nominal"
DIRECTIONS = ("up", "down")
_SHIFT_NAME = re.compile(r"^([a-z][a-z0-9]*)_(up|down)$")
_REGISTERED_SOURCES: set[str] = set()


def register_shift_sources(*sources: str) -> None:
    """Declare systematic sources (``"jes"``, ``"pdf"``, ...) known to the analysis."""
    for source in sources:
        if not re.match(r"^[a-z][a-z0-9]*$", source):
            raise ShiftError(f"shift source {source!r} must be lower-case letters and digits, e.g. 'jes'")
        _REGISTERED_SOURCES.add(source)


def known_sources() -> set[str]:
    """Sources registered in code plus those listed in ``[pylaw] shift_sources``."""
    configured = luigi.configuration.get_config().get("pylaw", "shift_sources", "")
    return _REGISTERED_SOURCES | {s.strip() for s in configured.replace(",", " ").split() if s.strip()}


def known_shifts() -> list[str]:
    """``nominal`` and both directions of every known source, sorted by source."""
    return [NOMINAL] + [f"{source}_{d}" for source in sorted(known_sources()) for d in DIRECTIONS]


def validate_shift(name: str, context: str = "") -> str:
    """Return ``name`` if it is ``nominal`` or a direction of a known source, else raise ShiftError."""
    if name == NOMINAL:
        return name
    match = _SHIFT_NAME.match(name)
    where = f" for {context}" if context else ""
    known = ", ".join(known_shifts())
    if not match:
        raise ShiftError(f"malformed shift {name!r}{where}: use nominal or <source>_up/<source>_down "
                         f"(known: {known})")
    if match.group(1) not in known_sources():
        raise ShiftError(f"unknown shift {name!r}{where}: its source {match.group(1)!r} is not declared "
                         f"(known: {known}); declare it with pylaw.register_shift_sources() or "
                         f"[pylaw] shift_sources")
    return name


def visible_shifts(cls: type) -> frozenset[str]:
    """Shifts ``cls`` implements or inherits from upstream (static, cached per class)."""
    cached = cls.__dict__.get("_visible_shifts")
    if cached is not None:
        return cached
    own = frozenset(getattr(cls, "shifts", ()) or ())
    for name in own:
        validate_shift(name, f"{cls.__name__}.shifts")
    seen = set(own)
    for upstream in getattr(cls, "upstream", ()):
        seen |= visible_shifts(upstream)
    result = frozenset(seen - {NOMINAL})
    cls._visible_shifts = result  # type: ignore[attr-defined]
    return result


def effective_shift(cls: type, requested: str) -> str:
    """The shift ``cls`` actually runs with when ``requested`` is asked for."""
    validate_shift(requested, cls.__name__)
    return requested if requested in visible_shifts(cls) else NOMINAL


def shift_role(cls: type, shift: str) -> str:
    """``implements``, ``inherits`` or ``nominal``: what ``cls`` does for ``shift``."""
    if shift == NOMINAL or shift not in visible_shifts(cls):
        return NOMINAL
    return "implements" if shift in (getattr(cls, "shifts", ()) or ()) else "inherits"


def upstream_classes(cls: type) -> list[type]:
    """``cls`` and every class reachable through ``upstream``, downstream first, each once."""
    ordered: list[type] = []

    def visit(current: type) -> None:
        if current in ordered:
            return
        ordered.append(current)
        for upstream in getattr(current, "upstream", ()):
            visit(upstream)

    visit(cls)
    return ordered


class ShiftTask(Task):
    """A task that may run under a systematic shift (``--shift jes_up``).

    Subclasses set ``shifts`` (the variations they implement themselves) and ``upstream``
    (the task classes they require), so what a task can see is known without running it.
    """

    shifts: ClassVar[Iterable[str]] = frozenset()
    upstream: ClassVar[tuple[type, ...]] = ()

    shift = luigi.Parameter(default=NOMINAL, positional=False,  # a framework parameter (see pylaw.Task)
                            description="systematic shift, e.g. jes_up; nominal by default")

    @classmethod
    def modify_param_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        values = super().modify_param_values(values)
        values["shift"] = effective_shift(cls, str(values.get("shift", NOMINAL)))
        return values

    def req(self, cls: type[luigi.Task], **overrides: Any) -> Any:
        """Like :meth:`Task.req`, and checks that ``cls`` is declared in ``upstream``.

        An undeclared requirement would hide its shifts from this task: the variation
        would silently fall back to nominal here.
        """
        if (cls not in upstream_classes(type(self)) and visible_shifts(cls)
                and not issubclass(type(self), cls)):
            raise ShiftError(f"{type(self).__name__} requires {cls.__name__}, which has shifts, but does not "
                             f"list it in {type(self).__name__}.upstream; add it so its shifts bubble up")
        return super().req(cls, **overrides)


def req_shifts(task: Task, cls: type[ShiftTask], shifts: Iterable[str] | None = None,
               **overrides: Any) -> dict[str, Any]:
    """``{shift: cls instance}`` for every shift ``cls`` can see (or ``shifts``), nominal included.

    The one-liner of tasks that combine variations, e.g. a statistical inference.
    """
    names = [NOMINAL, *sorted(visible_shifts(cls))] if shifts is None else list(shifts)
    return {name: task.req(cls, shift=name, **overrides) for name in names}
