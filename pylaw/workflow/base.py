"""Workflows: tasks with a branch map, whose execution backend is chosen at run time.

A workflow class mixes :class:`BaseWorkflow` subclasses (``LocalWorkflow``, later
``SlurmWorkflow``, ...) into a :class:`pylaw.Task`. ``branch=-1`` is the workflow itself,
``branch=N`` the task doing the work for payload N. ``--workflow TYPE`` picks one of the
workflow types found in the class hierarchy: a new backend registers itself just by
setting ``workflow_type`` and ``workflow_proxy_cls`` on its mixin.

Branch outputs are computed on *branch views* (copies of one real branch instance with
another branch number) so that checking 100k outputs does not build 100k Luigi tasks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import luigi
from luigi.parameter import ParameterVisibility

from pylaw.errors import BranchError, WorkflowChoiceError
from pylaw.parameter import RangeParameter, Ranges
from pylaw.target.collection import TargetCollection

# (class, branch map) of workflows building their own branches, so that each new branch
# takes its data from the map at hand instead of looking its workflow up again.
_PROVIDED_MAPS: list[tuple[type, dict[int, Any]]] = []


class WorkflowProxy:
    """What a workflow instance (branch -1) does for one workflow type.

    The workflow's ``requires()`` and ``run()`` are answered by its proxy; its ``output()``
    is always the collection of branch outputs, and ``complete()`` checks that collection.
    """

    def __init__(self, task: Any) -> None:
        self.task = task

    def requires(self) -> Any:
        return self.task.workflow_requires()

    def run(self) -> Any:
        raise NotImplementedError

    def complete(self) -> bool:
        return bool(self.task.workflow_output().exists())


class BaseWorkflow:
    """Mixin giving a :class:`pylaw.Task` a branch map and a run-time choice of backend."""

    #: set by each workflow mixin: the ``--workflow`` name it answers to ...
    workflow_type: ClassVar[str | None] = None
    #: ... and the proxy that requires/runs the workflow for that type
    workflow_proxy_cls: ClassVar[type[WorkflowProxy]] = WorkflowProxy
    #: compute branch outputs on views of one branch instance (turn off if __init__ is overridden)
    light_branch_outputs: ClassVar[bool] = True

    # framework parameters: positional=False (see pylaw.Task), the insignificant ones hidden
    branch = luigi.IntParameter(default=-1, positional=False,
                                description="branch number to run; -1: the whole workflow")
    branches = RangeParameter(positional=False,
                              description="restrict the workflow to these branches, e.g. 0-9,15,20-")
    workflow = luigi.Parameter(
        default="", significant=False, positional=False, visibility=ParameterVisibility.HIDDEN,
        description="where the branches run (local, slurm, ...); default: local or the first type")
    local = luigi.BoolParameter(default=False, significant=False, positional=False,
                                visibility=ParameterVisibility.HIDDEN, description="shorthand for --workflow local")

    exclude_params_store: ClassVar[frozenset[str]] = frozenset({"branch", "branches", "workflow", "local"})

    # attributes set per instance
    branch_data: Any
    workflow_proxy: WorkflowProxy

    if TYPE_CHECKING:  # provided by the pylaw.Task this mixin is combined with
        param_kwargs: dict[str, Any]

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
            values["workflow"], values["local"] = "local", False
        if values.get("branch", -1) >= 0:
            # branches are the same task whatever workflow or selection asked for them
            values["branches"], values["workflow"] = Ranges(), ""
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
        types = self.workflow_types()
        wtype = self.workflow or ("local" if "local" in types else next(iter(types), ""))
        if wtype not in types:
            raise WorkflowChoiceError(
                f"{self.get_task_family()} does not support --workflow {wtype!r}; it supports: "
                f"{', '.join(types) or 'none'} (add the matching mixin, e.g. pylaw.SlurmWorkflow)")
        self.workflow = wtype
        self.workflow_proxy = types[wtype].workflow_proxy_cls(self)
        # A workflow instance answers Luigi with its workflow behaviour; the class methods
        # written by the user describe one branch.
        self.requires = self.workflow_proxy.requires  # type: ignore[method-assign]
        self.run = self.workflow_proxy.run  # type: ignore[method-assign]
        self.complete = self.workflow_proxy.complete  # type: ignore[method-assign]
        self.output = self.workflow_output  # type: ignore[method-assign]

    # -- branch map ------------------------------------------------------------------

    def create_branch_map(self) -> Mapping[int, Any] | Sequence[Any]:
        """Branch number -> payload (a list is numbered from 0). Must be overridden."""
        raise NotImplementedError(f"{type(self).__name__} must implement create_branch_map()")

    def get_branch_map(self) -> dict[int, Any]:
        """The branch map, built once per workflow and shared by its branches."""
        cached = self.__dict__.get("_branch_map")
        if cached is None and self.is_branch():
            cached = self._branch_map = self.as_workflow().get_branch_map()
        if cached is None:
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
        _PROVIDED_MAPS.append((type(self), self.get_branch_map()))
        try:
            return type(self).from_param_values(values)
        finally:
            _PROVIDED_MAPS.pop()

    def branch_numbers(self) -> list[int]:
        """The branches this workflow covers: all, or those selected by ``--branches``."""
        numbers = list(self.get_branch_map())
        if not self.branches:
            return numbers
        missing = [n for start, stop in self.branches.intervals if stop is not None
                   for n in range(start, stop + 1) if n not in self.get_branch_map()]
        if missing:
            raise BranchError(
                f"--branches {self.branches} selects branches {describe_numbers(missing)} that "
                f"{self.get_task_family()} does not have (it has {describe_numbers(numbers)})")
        return self.branches.select(numbers)

    # -- requirements and outputs -----------------------------------------------------

    def workflow_requires(self) -> Any:
        """What the workflow as a whole needs before its branches run (default: nothing)."""
        return []

    def branch_views(self, numbers: Sequence[int]) -> Iterator[Any]:
        """Objects standing for the given branches, good for calling ``output()``."""
        if not numbers:
            return
        if not self.light_branch_outputs:
            yield from (self.as_branch(n) for n in numbers)
            return
        template = self.as_branch(numbers[0])
        template.output()  # fills per-instance caches (store directory) that every view shares
        branch_map = self.get_branch_map()
        base = {k: v for k, v in template.__dict__.items() if k not in ("task_id", "_Task__hash")}
        params = template.param_kwargs
        cls = type(template)
        for n in numbers:
            view = object.__new__(cls)
            view.__dict__.update(base)
            view.branch, view.branch_data = n, branch_map[n]
            view.param_kwargs = {**params, "branch": n}
            yield view

    def workflow_output(self) -> TargetCollection:
        """The collection of branch outputs (one element per selected branch), cached."""
        collection = self.__dict__.get("_workflow_output")
        if collection is None:
            numbers = self.branch_numbers()
            outputs = (view.output() for view in self.branch_views(numbers))
            collection = TargetCollection(dict(zip(numbers, outputs, strict=True)))
            self._workflow_output = collection
        return collection


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
