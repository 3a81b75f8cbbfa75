"""Branch views: stand-ins for a workflow's branch tasks that equal the real ones.

Checking 100k branch outputs must not construct 100k Luigi tasks (parameter handling,
task-id hashing and the instance cache cost tens of microseconds each). A *view* is an
instance of the branch class made without running its constructor: it gets the state a
real branch would have, copied from one freshly built branch (the *template*), with the
entries that differ per branch replaced: ``branch``, ``branch_data``, ``param_kwargs``.
Its ``task_id`` (Luigi's attribute) is computed on first use.

That is exact only when construction depends on nothing else, which is decided per class
from the hooks it overrides (every class outside pylaw and Luigi counts as the user's):

``COPY``
    no construction hook overridden: the template's state right after construction is
    copied (not what a later ``output()`` call cached on it, such as a
    ``functools.cached_property``), plus its store directory, which then cannot depend
    on the branch.
``REPLAY``
    ``setup_instance()`` or the store layout (``store_parts()``, ``local_path()``) is
    overridden: only Luigi's own state is copied and ``setup_instance()`` runs again on
    the view, exactly as the constructor runs it; the store directory is recomputed.
``REAL``
    ``__init__``, ``__new__`` or ``__setattr__`` is overridden (code that no view can
    replay), or the class sets ``light_branch_outputs = False``: real branch instances,
    built without entering Luigi's instance cache (their memory is freed after use).

A user's ``modify_param_values()`` may change values per branch: it runs for every view,
and a branch whose values then differ from the template's gets a real instance.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import Any

#: hooks whose code runs in the constructor and cannot be replayed on a copy
REAL_HOOKS = ("__init__", "__new__", "__setattr__")
#: hooks that decide a task's store directory
STORE_HOOKS = ("store_parts", "local_path")
#: hooks that a view can run again, or whose result it recomputes
REPLAY_HOOKS = ("setup_instance", *STORE_HOOKS)
#: what Luigi's Task.__init__ stores besides one attribute per parameter (task_id and the
#: hash are derived from the parameters on first use instead)
LUIGI_STATE = ("param_kwargs", "set_tracking_url", "set_status_message", "set_progress_percentage")
_FRAMEWORK_PACKAGES = frozenset({"pylaw", "luigi", "builtins"})


class ViewMode(enum.Enum):
    """How views of a class's branches are made (see the module docstring)."""

    COPY = "copy"
    REPLAY = "replay"
    REAL = "real"


def user_overrides(cls: type, names: Iterable[str]) -> bool:
    """Whether a class of the user's (not pylaw's, not Luigi's) in ``cls``'s MRO defines one of ``names``."""
    wanted = tuple(names)
    return any(name in vars(klass) for klass in cls.__mro__
               if klass.__module__.partition(".")[0] not in _FRAMEWORK_PACKAGES for name in wanted)


def view_mode(cls: type) -> ViewMode:
    """The exact way to stand in for branches of ``cls``."""
    if not getattr(cls, "light_branch_outputs", True) or user_overrides(cls, REAL_HOOKS):
        return ViewMode.REAL
    if user_overrides(cls, REPLAY_HOOKS):
        return ViewMode.REPLAY
    return ViewMode.COPY


class BranchViews:
    """Makes views of the branches of one workflow instance."""

    def __init__(self, workflow: Any, first: int) -> None:
        self.workflow = workflow
        self.cls = type(workflow)
        self.mode = view_mode(self.cls)
        self.branch_map = workflow.get_branch_map()
        self.check_values = user_overrides(self.cls, ("modify_param_values",))
        template = workflow.new_branch(first)
        self.params: dict[str, Any] = template.param_kwargs
        state = template.__dict__
        if self.mode is ViewMode.COPY:
            self.base = {k: v for k, v in state.items() if k != "task_id" and not k.endswith("__hash")}
        else:
            keep = {*self.params, *LUIGI_STATE}
            self.base = {k: v for k, v in state.items() if k in keep}
            self.base["_branch_map"] = self.branch_map
        # Without an own store layout the store directory is the same for every branch
        # ("branch" is no part of it), so it is computed once instead of once per view.
        self.store_dir = None if user_overrides(self.cls, STORE_HOOKS) else template.local_path()
        if self.store_dir is not None:
            self.base["_store_dir"] = self.store_dir

        # one specialised method per mode: the per-branch path of 100k views has no branching
        self.view: Callable[[int], Any]  # branch number -> its stand-in
        if self.mode is ViewMode.REAL:
            self.view = self._real_branch
        elif self.check_values:
            self.view = self._checked_view
        else:
            self.view = self._copy_view if self.mode is ViewMode.COPY else self._replayed_view

    def _copy_view(self, branch: int) -> Any:
        view = object.__new__(self.cls)
        state = view.__dict__
        state.update(self.base)
        state["branch"] = branch
        state["branch_data"] = self.branch_map[branch]
        state["param_kwargs"] = {**self.params, "branch": branch}
        return view

    def _replayed_view(self, branch: int) -> Any:
        view = object.__new__(self.cls)
        state = view.__dict__
        state.update(self.base)
        state["branch"] = branch
        state["param_kwargs"] = {**self.params, "branch": branch}
        view.setup_instance()
        return view

    def _real_branch(self, branch: int) -> Any:
        task = self.workflow.new_branch(branch)
        if self.store_dir is not None and task.param_kwargs == {**self.params, "branch": branch}:
            task.__dict__.setdefault("_store_dir", self.store_dir)
        return task

    def _checked_view(self, branch: int) -> Any:
        values = {**self.params, "branch": branch}
        if self.cls.modify_param_values(dict(values)) != values:
            return self.workflow.new_branch(branch)
        return self._copy_view(branch) if self.mode is ViewMode.COPY else self._replayed_view(branch)
