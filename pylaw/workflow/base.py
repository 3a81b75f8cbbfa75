"""Workflows: tasks with a branch map, whose execution backend is chosen at run time.

A workflow class mixes :class:`BaseWorkflow` subclasses (``LocalWorkflow``, later
``SlurmWorkflow``, ...) into a :class:`pylaw.Task`. ``branch=-1`` is the workflow itself,
``branch=N`` the task doing the work for payload N. ``--workflow TYPE`` picks one of the
workflow types found in the class hierarchy: a new backend registers itself just by
setting ``workflow_type`` and ``workflow_proxy_cls`` on its mixin.

Branch outputs and completeness are computed on *branch views*, stand-ins equal to the
real branch tasks (:mod:`pylaw.workflow.views`), so that checking 100k outputs does not
build 100k Luigi tasks.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import luigi
from luigi.task import flatten, getpaths

from pylaw.ce import ComputingElement, computing_element, missing_backend_hint
from pylaw.errors import BranchError, BranchMapNotReadyError, WorkflowChoiceError
from pylaw.parameter import RangeParameter, Ranges
from pylaw.target.collection import PendingCollection, TargetCollection
from pylaw.task import HIDDEN, passing_on
from pylaw.workflow.views import BranchViews, user_overrides

logger = logging.getLogger("pylaw.workflow")

# (class, branch map) of workflows building their own branches, so that each new branch
# takes its data from the map at hand instead of looking its workflow up again.
_PROVIDED_MAPS: list[tuple[type, dict[int, Any]]] = []
#: set inside batch jobs: the (type, proxy) every workflow runs with, whatever it asks for
_FORCED_WORKFLOW: tuple[str, type[WorkflowProxy]] | None = None
#: (class, requested type) already logged as falling back to the class's default
_FALLBACKS_LOGGED: set[tuple[type, str]] = set()


def force_workflow_type(wtype: str, proxy_cls: type[WorkflowProxy] | None) -> None:
    """Make every workflow created from now on in this process run with ``proxy_cls``.

    A batch job calls it with the local proxy: a requirement met inside a job (``--pilot``,
    or an upstream workflow that is Slurm-only) runs there instead of submitting jobs from
    the job. ``None`` lifts it.
    """
    global _FORCED_WORKFLOW
    _FORCED_WORKFLOW = None if proxy_cls is None else (wtype, proxy_cls)


class WorkflowProxy:
    """What a workflow instance (branch -1) does for one workflow type.

    The workflow's ``requires()`` and ``run()`` are answered by its proxy; its ``output()``
    is always the collection of branch outputs, and ``complete()`` checks that collection.
    """

    def __init__(self, task: Any) -> None:
        self.task = task

    def requires(self) -> Any:
        task = self.task
        upstream, for_map = task.workflow_requires(), task.branch_map_requires()
        if not flatten(for_map):
            return upstream
        return {"workflow": upstream, "branch_map": for_map}

    def run(self) -> Any:
        raise NotImplementedError

    def complete(self) -> bool:
        if self.task.branch_map_waiting():
            return False  # no branches known yet: an empty set of branches would look complete
        return all(self.task.branch_completeness().values())


class BaseWorkflow:
    """Mixin giving a :class:`pylaw.Task` a branch map and a run-time choice of backend."""

    #: set by each workflow mixin: the ``--workflow`` name it answers to ...
    workflow_type: ClassVar[str | None] = None
    #: ... and the proxy that requires/runs the workflow for that type
    workflow_proxy_cls: ClassVar[type[WorkflowProxy]] = WorkflowProxy
    #: False: build real branch tasks for outputs and completeness even where exact views are possible
    light_branch_outputs: ClassVar[bool] = True

    # framework parameters: positional=False (see pylaw.Task), the insignificant ones hidden
    branch = luigi.IntParameter(default=-1, positional=False,
                                description="branch number to run; -1: the whole workflow")
    branches = RangeParameter(positional=False,
                              description="restrict the workflow to these branches, e.g. 0-9,15,20-")
    local = luigi.BoolParameter(default=False, significant=False, positional=False,
                                visibility=HIDDEN, description="shorthand for --workflow local")

    exclude_params_store: ClassVar[frozenset[str]] = frozenset({"branch", "branches", "workflow", "local", "ce"})

    # attributes set per instance
    branch_data: Any
    workflow_proxy: WorkflowProxy

    if TYPE_CHECKING:  # provided by the pylaw.Task this mixin is combined with
        param_kwargs: dict[str, Any]
        workflow: str
        ce: str

        @classmethod
        def get_task_family(cls) -> str: ...

        def req(self, cls: type, **overrides: Any) -> Any: ...

        @classmethod
        def from_param_values(cls, values: dict[str, Any]) -> Any: ...

    @classmethod
    def modify_param_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        parent = getattr(super(), "modify_param_values", None)
        if parent is not None:
            values = parent(values)
        if values.get("local"):
            values["workflow"], values["local"], values["ce"] = "local", False, ""
        if values.get("ce") and values.get("branch", -1) == -1:
            element = computing_element(values["ce"])
            asked = values.get("workflow")
            if asked and asked != element.type and not passing_on():
                raise WorkflowChoiceError(f"--workflow {asked} contradicts --ce {element.name} (a {element.type} "
                                          f"computing element): give one of them")
            values["workflow"] = element.type
        if values.get("branch", -1) < -1:
            # -2 would be a second "workflow" instance with its own task id (run twice under luigid)
            raise BranchError(f"--branch {values['branch']} is not a branch of {cls.get_task_family()}: use -1 "
                              f"for the workflow or a branch number of its branch map (>= 0)")
        if values.get("branch", -1) >= 0:
            # branches are the same task whatever workflow, computing element or selection asked for them
            values["branches"], values["workflow"], values["ce"] = Ranges(), "", ""
        return values

    @classmethod
    def workflow_types(cls) -> dict[str, type[BaseWorkflow]]:
        """The workflow types this class supports, in MRO order."""
        found: dict[str, type[BaseWorkflow]] = {}
        for klass in cls.__mro__:
            wtype = vars(klass).get("workflow_type")
            if wtype and wtype not in found:
                found[wtype] = klass
        return found

    def setup_instance(self) -> None:
        parent = getattr(super(), "setup_instance", None)
        if parent is not None:
            parent()
        if self.is_branch():
            provided = _PROVIDED_MAPS[-1] if _PROVIDED_MAPS else None
            if provided is not None and provided[0] is type(self):
                self._branch_map = provided[1]  # built by our own workflow: no need to look it up
            branch_map = self.get_branch_map()
            if self.branch not in branch_map:
                raise BranchError(
                    f"branch {self.branch} is not in the branch map of {self.get_task_family()} "
                    f"({describe_numbers(list(branch_map))}); pick one of those or -1 for the workflow")
            self.branch_data = branch_map[self.branch]
            return
        wtype, proxy_cls = self.choose_workflow_type()
        self.workflow = wtype
        self.workflow_proxy = proxy_cls(self)
        # A workflow instance answers Luigi with its workflow behaviour; the class methods
        # written by the user describe one branch.
        self.requires = self.workflow_proxy.requires  # type: ignore[method-assign]
        self.run = self.workflow_proxy.run  # type: ignore[method-assign]
        self.complete = self.workflow_proxy.complete  # type: ignore[method-assign]
        self.output = self.workflow_output  # type: ignore[method-assign]
        if self.branches:  # a selection outside the map is refused here, not later inside complete()
            with contextlib.suppress(BranchMapNotReadyError):
                self.branch_numbers()

    def choose_workflow_type(self) -> tuple[str, type[WorkflowProxy]]:
        """The type this workflow runs with, and its proxy class.

        ``--workflow`` given for this task must be one of its types. Passed on by
        :meth:`~pylaw.Task.req` from a requiring task it is a wish: a class lacking that
        type runs with its default (logged once per class), and still passes the wish on
        to its own requirements. Inside a batch job everything runs locally.
        """
        if _FORCED_WORKFLOW is not None:
            return _FORCED_WORKFLOW
        types = self.workflow_types()
        default = "local" if "local" in types else next(iter(types), "")
        wtype = self.workflow or default
        if wtype not in types and self.workflow and passing_on():
            if (type(self), wtype) not in _FALLBACKS_LOGGED:
                _FALLBACKS_LOGGED.add((type(self), wtype))
                logger.warning("%s does not support --workflow %s (it supports: %s): it runs with %s",
                               self.get_task_family(), wtype, ", ".join(types), default)
            wtype = default
        if wtype not in types:
            via = f"--ce {self.ce} (a {wtype} computing element)" if self.ce else f"--workflow {wtype!r}"
            raise WorkflowChoiceError(
                f"{self.get_task_family()} cannot run on {via}: it supports {', '.join(types) or 'none'}; "
                f"{missing_backend_hint(wtype)}")
        return wtype, types[wtype].workflow_proxy_cls

    def computing_element(self) -> ComputingElement | None:
        """The ``[ce:NAME]`` this workflow runs on (``--ce NAME``), or None."""
        return computing_element(self.ce) if self.ce else None

    # -- branch map ------------------------------------------------------------------

    def branch_map_requires(self) -> Any:
        """Tasks whose outputs :meth:`create_branch_map` reads (default: none).

        The workflow requires them, whatever its type (also with ``--pilot``), and builds
        its map only once they are all complete; until then it is *waiting*: not complete,
        its output an empty :class:`~pylaw.target.collection.PendingCollection`.
        """
        return []

    def branch_map_input(self) -> Any:
        """The outputs of :meth:`branch_map_requires`, as ``input()`` gives those of ``requires()``."""
        return getpaths(self.branch_map_requires())

    def branch_map_waiting(self) -> list[Any]:
        """The tasks of :meth:`branch_map_requires` still incomplete; ``[]`` once the map can be built.

        Asked of the workflow (a branch asks its workflow). Readiness is remembered once
        reached, never the waiting: an upstream task may complete at any moment.
        """
        if "_branch_map" in self.__dict__ or "_branch_map_ready" in self.__dict__:
            return []
        if self.is_branch():
            return list(self.as_workflow().branch_map_waiting())
        waiting = [task for task in flatten(self.branch_map_requires()) if not task.complete()]
        if not waiting:
            self._branch_map_ready = True
        return waiting

    def check_branch_map_ready(self) -> None:
        waiting = self.branch_map_waiting()
        if waiting:
            names = ", ".join(str(task) for task in waiting[:3]) + (" ..." if len(waiting) > 3 else "")
            raise BranchMapNotReadyError(
                f"the branch map of {self.get_task_family()} is built from the outputs of {names}, which "
                f"are not complete yet: run the workflow {self.get_task_family()} (it requires them) before "
                f"asking for its branches")

    def create_branch_map(self) -> Mapping[int, Any] | Sequence[Any]:
        """Branch number -> payload (a list is numbered from 0). Must be overridden."""
        raise NotImplementedError(f"{type(self).__name__} must implement create_branch_map()")

    def get_branch_map(self) -> dict[int, Any]:
        """The branch map, built once per workflow and shared by its branches."""
        cached = self.__dict__.get("_branch_map")
        if cached is None and self.is_branch():
            cached = self._branch_map = self.as_workflow().get_branch_map()
        if cached is None:
            self.check_branch_map_ready()
            raw = self.create_branch_map()
            cached = dict(raw) if isinstance(raw, Mapping) else dict(enumerate(raw))
            if any(not isinstance(key, int) or key < 0 for key in cached):
                raise BranchError(f"{self.get_task_family()}.create_branch_map() must use integers >= 0 as keys")
            self._branch_map = cached
        return cached

    def is_branch(self) -> bool:
        return bool(self.branch >= 0)

    def is_workflow(self) -> bool:
        return not self.is_branch()

    def as_workflow(self) -> Any:
        """The workflow this branch belongs to (the same instance Luigi caches)."""
        return self.with_branch(-1) if self.is_branch() else self

    def as_branch(self, branch: int) -> Any:
        """The real task of one branch."""
        return self.with_branch(branch)

    def with_branch(self, branch: int) -> Any:
        # Every value passed explicitly: Luigi then skips its per-parameter config
        # look-ups, which otherwise dominate building thousands of branches.
        values = {**self.param_kwargs, "branch": branch}
        if branch < 0 or self.is_branch():
            return type(self).from_param_values(values)
        with self._providing_branch_map():
            return type(self).from_param_values(values)

    def new_branch(self, branch: int) -> Any:
        """A freshly built branch task, not taken from (nor put into) Luigi's instance cache."""
        cls = type(self)
        values = cls.modify_param_values({**self.param_kwargs, "branch": branch})
        with self._providing_branch_map():
            return type.__call__(cls, **values)

    @contextlib.contextmanager
    def _providing_branch_map(self) -> Iterator[None]:
        _PROVIDED_MAPS.append((type(self), self.get_branch_map()))
        try:
            yield
        finally:
            _PROVIDED_MAPS.pop()

    def branch_numbers(self) -> list[int]:
        """The branches this workflow covers: all, or those selected by ``--branches``."""
        numbers = list(self.get_branch_map())
        if not self.branches:
            return numbers
        missing = unknown_branches(self.branches, sorted(numbers))
        if missing:
            raise BranchError(
                f"--branches {self.branches} selects branches {missing} that "
                f"{self.get_task_family()} does not have (it has {describe_numbers(numbers)})")
        return self.branches.select(numbers)

    # -- requirements and outputs -----------------------------------------------------

    def workflow_requires(self) -> Any:
        """What the workflow as a whole needs before its branches run (default: nothing)."""
        return []

    def branch_views(self, numbers: Sequence[int]) -> Iterator[Any]:
        """Stand-ins for the given branches, equal to the real branch tasks (see :mod:`pylaw.workflow.views`)."""
        if not numbers:
            return
        views = BranchViews(self, numbers[0])
        yield from map(views.view, numbers)

    def branch_completeness(self) -> dict[int, bool]:
        """Per selected branch, whether it is complete.

        Its outputs exist (checked in bulk), or, when the class overrides ``complete()``,
        whatever that says for the branch.
        """
        if user_overrides(type(self), ("complete",)):
            numbers = self.branch_numbers()
            return {n: bool(view.complete()) for n, view in zip(numbers, self.branch_views(numbers), strict=True)}
        return self.workflow_output().existence()

    def workflow_output(self) -> TargetCollection:
        """The collection of branch outputs (one element per selected branch), cached."""
        collection = self.__dict__.get("_workflow_output")
        if collection is None:
            waiting = self.branch_map_waiting()
            if waiting:
                return PendingCollection(waiting)  # not cached: the map may be ready next time
            numbers = self.branch_numbers()
            outputs = (view.output() for view in self.branch_views(numbers))
            collection = TargetCollection(dict(zip(numbers, outputs, strict=True)))
            self._workflow_output = collection
        return collection


def unknown_branches(selection: Ranges, keys: Sequence[int]) -> str:
    """The part of ``selection`` outside the sorted branch ``keys``, as ranges ("" if none).

    Works on the gaps between keys, never on the selected range itself, so ``0-1000000000``
    costs as much as ``0-9``. An open range (``10-``) must reach at least one branch.
    """
    parts: list[str] = []
    for start, stop in selection.intervals:
        if stop is None:  # "from start to the end": whatever branches exist there, but some must
            if not keys or start > keys[-1]:
                parts.append(f"{start}-")
            continue
        lo, hi = bisect.bisect_left(keys, start), bisect.bisect_right(keys, stop)
        expected = start
        for key in keys[lo:hi]:
            if key > expected:
                parts.append(_span(expected, key - 1))
            expected = key + 1
        if expected <= stop:
            parts.append(_span(expected, stop))
    return ",".join(parts)


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def describe_numbers(numbers: Sequence[int]) -> str:
    """``[0,1,2,5]`` -> ``"0-2,5"``: compact, for messages."""
    parts: list[str] = []
    ordered = sorted(numbers)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts) if parts else "none"
