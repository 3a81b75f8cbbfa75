"""Systematic shifts: each variation is computed as late in the chain as possible.

A :class:`ShiftTask` declares the shifts it implements itself (``shifts``). For a
requested shift, a task's *effective* shift is that shift if the task or one of its
requirements, transitively, implements it, else ``nominal``. What a task sees is resolved
from its actual requirements (``requires()``), once per task and cached on the instance.
The rewrite happens before Luigi's instance cache, so ``Selection(shift="jes_up")`` *is*
``Selection(shift="nominal")``: one instance, one task id, one output, never recomputed.

Shift names are ``<source>_up``, ``<source>_down`` or ``nominal``. The known sources are
those of the shifts every ShiftTask class declares, plus optional extras registered with
:func:`register_shift_sources` or listed in ``[pylaw] shift_sources``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import luigi
from luigi.task import flatten

from pylaw.errors import ShiftError
from pylaw.parameter import Ranges
from pylaw.task import Task
from pylaw.workflow.base import BaseWorkflow

logger = logging.getLogger(__name__)

NOMINAL = "nominal"
DIRECTIONS = ("up", "down")
_SHIFT_NAME = re.compile(r"^([a-z][a-z0-9]*)_(up|down)$")
_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9]*$")
_REGISTERED_SOURCES: set[str] = set()
#: attribute caching, on a task's canonical nominal instance, the shifts it sees
_VISIBLE_ATTR = "_pylaw_visible_shifts"
#: bumped whenever a ShiftTask class is defined: invalidates the declared sources
_class_generation = 0
_declared_cache: tuple[int, frozenset[str]] = (-1, frozenset())
_resolving: set[int] = set()


def register_shift_sources(*sources: str) -> None:
    """Declare extra systematic sources (``"jes"``, ...), e.g. ones no task class implements yet.

    Optional: the sources of every shift a ShiftTask class declares are known anyway.
    """
    for source in sources:
        if not _SOURCE_NAME.match(source):
            raise ShiftError(f"shift source {source!r} must be lower-case letters and digits, e.g. 'jes'")
        _REGISTERED_SOURCES.add(source)


def _shift_classes(root: type) -> Iterator[type]:
    sub: type
    for sub in root.__subclasses__():
        yield sub
        yield from _shift_classes(sub)


def declared_sources() -> frozenset[str]:
    """Sources of the shifts declared by every defined ShiftTask class (cached per class definition)."""
    global _declared_cache
    generation, sources = _declared_cache
    if generation != _class_generation:
        found = {name.rsplit("_", 1)[0] for cls in _shift_classes(ShiftTask) for name in own_shifts(cls)}
        sources = frozenset(found)
        _declared_cache = (_class_generation, sources)
    return sources


def known_sources() -> set[str]:
    """Declared by task classes, registered in code, or listed in ``[pylaw] shift_sources``."""
    configured = luigi.configuration.get_config().get("pylaw", "shift_sources", "")
    extra = {s.strip() for s in configured.replace(",", " ").split() if s.strip()}
    return set(declared_sources()) | _REGISTERED_SOURCES | extra


def known_shifts() -> list[str]:
    """``nominal`` and both directions of every known source, sorted by source."""
    return [NOMINAL] + [f"{source}_{d}" for source in sorted(known_sources()) for d in DIRECTIONS]


def _check_name(name: str, where: str) -> re.Match[str]:
    match = _SHIFT_NAME.match(name)
    if not match:
        raise ShiftError(f"malformed shift {name!r}{where}: use nominal or <source>_up/<source>_down "
                         f"(known: {', '.join(known_shifts())})")
    return match


def validate_shift(name: str, context: str = "") -> str:
    """Return ``name`` if it is ``nominal`` or a direction of a known source, else raise ShiftError."""
    if name == NOMINAL:
        return name
    where = f" for {context}" if context else ""
    match = _check_name(name, where)
    if match.group(1) not in known_sources():
        raise ShiftError(f"unknown shift {name!r}{where}: no task declares its source {match.group(1)!r} "
                         f"(known: {', '.join(known_shifts())}); add it to the shifts of the task that "
                         f"implements it, or declare it with pylaw.register_shift_sources() or "
                         f"[pylaw] shift_sources")
    return name


def own_shifts(cls: type) -> frozenset[str]:
    """The shifts ``cls`` implements itself (its ``shifts``, without ``nominal``)."""
    return frozenset(getattr(cls, "_own_shifts", ()))


# -- resolution ----------------------------------------------------------------------

def canonical_nominal_values(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The parameter values of the nominal instance that decides the shift of ``values``.

    For a workflow or one of its branches that is the whole workflow (every branch, the
    default backend): a branch and any workflow containing it must agree on the shift, since
    a workflow's output collection is built from its branches.
    """
    nominal = {**values, "shift": NOMINAL}
    if issubclass(cls, BaseWorkflow):
        nominal.update(branch=-1, branches=Ranges(), workflow="", local=False)
    return nominal


def nominal_of(task: ShiftTask) -> ShiftTask:
    """The canonical nominal instance standing for ``task`` (``task`` itself when it is one)."""
    cls = type(task)
    values = canonical_nominal_values(cls, task.param_kwargs)
    if values == task.param_kwargs:
        return task
    return cls.from_param_values(values)  # type: ignore[attr-defined,no-any-return]


def resolve_shift(cls: type, values: dict[str, Any]) -> str:
    """The shift an instance of ``cls`` with ``values`` runs with (the requested one or nominal)."""
    requested = str(values.get("shift", NOMINAL))
    if requested == NOMINAL:
        return NOMINAL  # nothing to resolve: no instance is built, so no recursion
    if requested in own_shifts(cls):
        return requested
    nominal = cls.from_param_values(canonical_nominal_values(cls, values))  # type: ignore[attr-defined]
    if requested in visible_shifts(nominal):
        return requested
    # Only now may the name be unknown (a seen shift is declared by some class): checking
    # here keeps the config look-up off the path of every branch of a shifted workflow.
    validate_shift(requested, cls.__name__)
    return NOMINAL


def shift_requirements(task: Any) -> list[Any]:
    """The tasks ``task`` requires, for shift resolution and the shift table.

    A workflow contributes ``workflow_requires()`` (not what its backend's proxy answers,
    which ``--pilot`` empties) and the requirements of its first branch (branches are
    assumed to require the same kinds of task). A branch map that cannot be built yet (it
    may depend on upstream outputs that do not exist) is skipped: then only
    ``workflow_requires()`` counts.
    """
    if not (isinstance(task, BaseWorkflow) and task.is_workflow()):
        return list(flatten(task.requires()))
    required = list(flatten(task.workflow_requires()))
    try:
        numbers = list(task.get_branch_map())
    except Exception as exc:  # whatever stops the map now is raised again where the map is used
        logger.debug("shift resolution of %s skips its branches: %s", task, exc)
        numbers = []
    if numbers:
        required += flatten(task.as_branch(numbers[0]).requires())
    return required


def visible_shifts(task: ShiftTask) -> frozenset[str]:
    """The shifts ``task`` implements or sees through its requirements (cached on its nominal instance)."""
    nominal = nominal_of(task)
    cached = nominal.__dict__.get(_VISIBLE_ATTR)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    key = id(nominal)
    if key in _resolving:
        raise ShiftError(f"cannot resolve the shifts of {nominal}: its requirements form a cycle")
    _resolving.add(key)
    try:
        upstream = getattr(type(nominal), "upstream", None)
        required = ([nominal.req(cls) for cls in upstream] if upstream is not None
                    else shift_requirements(nominal))
        seen = set(own_shifts(type(nominal)))
        for requirement in required:
            # a shift passes only through ShiftTasks: a plain task has no shift to hand on
            if isinstance(requirement, ShiftTask):
                seen |= visible_shifts(requirement)
    finally:
        _resolving.discard(key)
    result = frozenset(seen)
    nominal.__dict__[_VISIBLE_ATTR] = result
    return result


def shift_role(task: ShiftTask, shift: str) -> str:
    """``implements``, ``inherits`` or ``nominal``: what ``task`` does for ``shift``."""
    if shift in own_shifts(type(task)):
        return "implements"
    return "inherits" if shift in visible_shifts(task) else NOMINAL


def _declared_upstream(cls: type) -> set[type]:
    """Classes reachable through ``upstream`` declarations from ``cls``."""
    found: set[type] = set()
    pending = list(getattr(cls, "upstream", None) or ())
    while pending:
        current = pending.pop()
        if current not in found:
            found.add(current)
            pending.extend(getattr(current, "upstream", None) or ())
    return found


class ShiftTask(Task):
    """A task that may run under a systematic shift (``--shift jes_up``).

    Subclasses set ``shifts``, the variations they implement themselves; what else they see
    is resolved from their requirements. ``upstream`` (task classes) optionally replaces
    that resolution by an explicit list.
    """

    shifts: ClassVar[Iterable[str]] = frozenset()
    #: optional override: the task sees its own shifts plus those of these classes
    upstream: ClassVar[tuple[type, ...] | None] = None
    _own_shifts: ClassVar[frozenset[str]] = frozenset()

    shift = luigi.Parameter(default=NOMINAL, positional=False,  # a framework parameter (see pylaw.Task)
                            description="systematic shift, e.g. jes_up; nominal by default")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = frozenset(cls.shifts or ()) - {NOMINAL}
        for name in names:
            _check_name(name, f" in {cls.__name__}.shifts")
        cls._own_shifts = names
        global _class_generation
        _class_generation += 1

    @classmethod
    def modify_param_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        values = super().modify_param_values(values)
        values["shift"] = resolve_shift(cls, values)
        return values

    def req(self, cls: type[luigi.Task], **overrides: Any) -> Any:
        """Like :meth:`pylaw.Task.req`; with ``upstream`` declared, checks that ``cls`` is in it.

        A requirement left out of an explicit ``upstream`` would hide its shifts from this
        task: the variation would silently fall back to nominal here.
        """
        required = super().req(cls, **overrides)
        declared = type(self).upstream
        if (declared is not None and isinstance(required, ShiftTask) and not issubclass(type(self), cls)
                and cls not in _declared_upstream(type(self)) and visible_shifts(required)):
            raise ShiftError(f"{type(self).__name__} requires {cls.__name__}, which has shifts, but does not "
                             f"list it in {type(self).__name__}.upstream; add it there, or drop upstream to "
                             f"resolve the shifts from requires()")
        return required


def req_shifts(task: Task, cls: type[ShiftTask], shifts: Iterable[str] | None = None,
               **overrides: Any) -> dict[str, Any]:
    """``{shift: cls instance}`` for every shift the required task sees (or ``shifts``), nominal first.

    The one-liner of tasks that combine variations, e.g. a statistical inference.
    """
    overrides.pop("shift", None)
    if shifts is None:
        names = [NOMINAL, *sorted(visible_shifts(task.req(cls, shift=NOMINAL, **overrides)))]
    else:
        names = list(shifts)
    return {name: task.req(cls, shift=name, **overrides) for name in names}
