"""pylaw.Task: Luigi's task with versions, ``req()``, store paths and a parameter hook."""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import luigi
from luigi.parameter import ParameterVisibility
from luigi.task import task_id_str
from luigi.task_register import Register

from pylaw import config, luigi_private, provenance
from pylaw.errors import MissingOutputError
from pylaw.interactive import perform_if_root
from pylaw.storepath import ensure_inside, sanitize_part, sanitize_relative
from pylaw.target.collection import iter_leaves, structure_exists
from pylaw.target.local import LocalDirectoryTarget, LocalFileTarget, guard_directory_outputs, written_by


def _checking_outputs(run: Callable[..., Any]) -> Callable[..., Any]:
    """``run`` that fails when it returns without writing every declared output, and records it otherwise.

    Luigi marks such a task done (its ``[worker] check_complete_on_run`` is off by default),
    so the run "succeeds" and only a later task finds the input missing. Checked once, when
    the outermost ``run()`` returns (a subclass may write more after ``super().run()``);
    then, the outputs being there, the run's provenance record is written beside them
    (:mod:`pylaw.provenance`).
    """
    if getattr(run, "_pylaw_checks_outputs", False):
        return run

    checked: Callable[..., Any]
    if inspect.isgeneratorfunction(run):  # dynamic dependencies: Luigi (and pylaw) tell them by the function
        @functools.wraps(run)
        def checked(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            started = time.time()
            with _run_level(self) as outermost:
                result = yield from run(self, *args, **kwargs)
            if outermost:
                _finish_run(self, started)
            return result
    else:
        @functools.wraps(run)
        def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.time()
            with _run_level(self) as outermost:
                result = run(self, *args, **kwargs)
            if outermost:
                _finish_run(self, started)
            return result

    checked._pylaw_checks_outputs = True  # type: ignore[attr-defined]
    return checked


@contextlib.contextmanager
def _run_level(task: Any) -> Iterator[bool]:
    """Count nested ``run()`` calls of one task (``super().run()``); yields whether this is the outermost."""
    depth = task.__dict__.get("_pylaw_run_depth", 0)
    task.__dict__["_pylaw_run_depth"] = depth + 1
    try:
        yield depth == 0
    finally:
        task.__dict__["_pylaw_run_depth"] = depth


def _finish_run(task: Any, started: float) -> None:
    """The outermost ``run()`` returned: its outputs must exist; then they get their record."""
    verified = type(task).complete is Task.complete  # else its own complete() says what done means
    outputs = task.output() if verified else None
    check_outputs_written(task, outputs)
    provenance.write_record(task, started, time.time(), verified=verified, outputs=outputs)


def check_outputs_written(task: Any, outputs: Any = None) -> None:
    """Raise :class:`MissingOutputError` naming the declared outputs ``task`` did not write.

    A class with its own ``complete()`` decides itself what done means: not checked.
    """
    if type(task).complete is not Task.complete:
        return
    outputs = task.output() if outputs is None else outputs
    leaves = [leaf for leaf in iter_leaves(outputs) if isinstance(leaf, luigi.target.Target)]
    if not leaves or structure_exists(outputs) is not False:
        return
    missing = [str(getattr(leaf, "path", leaf)) for leaf in leaves if not written_by(leaf, task)]
    if not missing:
        return  # only its own guarded directories look missing until the task has finished
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    raise MissingOutputError(f"{task.task_family}.run() returned without writing {len(missing)} of its "
                             f"outputs: {shown}")


class TaskRegister(Register):
    """Luigi's task metaclass, plus :meth:`Task.modify_param_values` before instance caching.

    Luigi returns the cached instance for equal parameter values; rewriting the values
    first (a shift nobody upstream implements becomes ``nominal``, ``--local`` becomes
    ``--workflow local``) makes two requests for the same work one instance, one task id.
    Instances live in Luigi's own cache, so ``clear_instance_cache()`` and
    ``disable_instance_cache()`` act on pylaw tasks as on any Luigi task.

    A task built outside another task's construction may be the root task of a command
    line with an interactive action: :func:`pylaw.interactive.perform_if_root` performs it
    there (and ends the command), once every ``__init__`` of the class has run.
    """

    def __init__(cls, name: str, bases: tuple, namespace: dict, **kwargs: Any) -> None:  # noqa: N805
        super().__init__(name, bases, namespace, **kwargs)
        # Mixins (workflows, shifts) add to these sets; collect them along the whole MRO,
        # since a mixin placed after pylaw.Task would otherwise be shadowed.
        for attr in ("exclude_params_req", "exclude_params_store"):
            merged: set[str] = set()
            for klass in cls.__mro__:
                merged.update(vars(klass).get(attr, ()))
            setattr(cls, attr, frozenset(merged))
        if inspect.isfunction(namespace.get("run")):
            type.__setattr__(cls, "run", _checking_outputs(namespace["run"]))
        if "_visible_in_registry" not in namespace:
            # pylaw's base classes hide from Luigi's registry by name (``Task`` must stay
            # luigi.Task); their subclasses are visible again, as every Luigi task is.
            owner = next(k for k in cls.__mro__ if "_visible_in_registry" in vars(k))
            if vars(owner).get("_hidden_base_class"):
                cls._visible_in_registry = True

    def __setattr__(cls, name: str, value: Any) -> None:  # noqa: N805
        if isinstance(value, luigi.Parameter) or isinstance(vars(cls).get(name), luigi.Parameter):
            cls._forget_params()
        super().__setattr__(name, value)

    def __delattr__(cls, name: str) -> None:  # noqa: N805
        if isinstance(vars(cls).get(name), luigi.Parameter):
            cls._forget_params()
        super().__delattr__(name)

    def _forget_params(cls) -> None:  # noqa: N805
        """Drop the cached :meth:`Task.get_params` of ``cls`` and every subclass (they inherit it)."""
        pending: list[type] = [cls]
        while pending:
            klass = pending.pop()
            if "_cached_params" in vars(klass):
                type.__delattr__(klass, "_cached_params")
            pending.extend(klass.__subclasses__())

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        global _building
        _building += 1
        try:
            values = dict(cls.get_param_values(cls.get_params(), args, kwargs))  # type: ignore[attr-defined]
            modified = cls.modify_param_values(dict(values))  # type: ignore[attr-defined]
            if modified == values:
                # __init__ receives what the caller passed, as with plain Luigi (a task's own
                # narrower __init__ may rely on it); the hook's rewrites are passed as keywords.
                instance = cls._cached_instance(modified, args, kwargs)
            else:
                instance = cls._cached_instance(modified, (), modified)
        finally:
            _building -= 1
        if not _building:
            # A command line's root task, complete with every __init__ and set-up hook of
            # its class: an interactive action requested for it ends the command here.
            perform_if_root(instance)
        return instance

    def from_param_values(cls, values: dict[str, Any]) -> Any:  # noqa: N805
        """The (cached) instance for a *complete* dict of *normalised* parameter values.

        Skips parsing: for copies of an existing task's ``param_kwargs`` with one value
        changed, as workflows do for each of their branches.
        """
        values = cls.modify_param_values(values)  # type: ignore[attr-defined]
        return cls._cached_instance(values, (), values)

    def _cached_instance(cls, values: dict[str, Any], args: tuple, kwargs: dict[str, Any]) -> Any:  # noqa: N805
        """Luigi's cached instance for ``values``, keyed as ``Register.__call__`` keys it."""
        cache = luigi_private.instance_cache(cls)
        if cache is None:
            return type.__call__(cls, *args, **kwargs)
        key = (cls, tuple(values.items()))
        try:
            instance = cache.get(key)
        except TypeError:  # unhashable values: Luigi does not cache those either
            return type.__call__(cls, *args, **kwargs)
        if instance is None:
            instance = cache[key] = type.__call__(cls, *args, **kwargs)
        return instance

    # Luigi's versions set the attribute on the class they are called on: called on a pylaw
    # class they would create a second cache on this metaclass that nothing reads.
    @classmethod
    def clear_instance_cache(cls) -> None:
        """Clear Luigi's instance cache (shared by all tasks, whichever class it is called on)."""
        Register.clear_instance_cache()

    @classmethod
    def disable_instance_cache(cls) -> None:
        """Disable Luigi's instance cache (shared by all tasks, whichever class it is called on)."""
        Register.disable_instance_cache()


HIDDEN = ParameterVisibility.HIDDEN

#: > 0 while a task instance is being built (tasks built inside are never a command line's root)
_building = 0


#: > 0 while req() builds a requirement with values passed on from the requiring task
_passing_on = 0


def passing_on() -> bool:
    """Whether the task being built got its values from :meth:`Task.req`, not from a caller.

    A ``--workflow`` type passed on this way is a wish (workflows that lack it run with
    their default type), while one given explicitly must be supported.
    """
    return _passing_on > 0


def _declaration_rank(cls: type) -> dict[str, int]:
    """Parameter name -> position: first declaration in the reversed MRO, then class body order."""
    rank: dict[str, int] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, luigi.Parameter) and name not in rank:
                rank[name] = len(rank)
    return rank


class Task(luigi.Task, metaclass=TaskRegister):
    """A Luigi task whose outputs live in a versioned store.

    Subclasses get ``--version``, :meth:`req`, :meth:`local_target`, the interactive
    command-line actions (``--print-status N`` and friends, see :mod:`pylaw.interactive`)
    and the :meth:`modify_param_values` hook.
    """

    _visible_in_registry = False  # the name "Task" resolves to luigi.Task; subclasses are visible
    _hidden_base_class = True

    # Framework parameters are positional=False, so the user's parameters keep Luigi's
    # positional order (MyTask(date)); the insignificant ones are hidden from the
    # visualiser's display names (Luigi's ParameterVisibility.HIDDEN keeps them out of
    # the display only: they are still sent to the scheduler, never part of the task id).
    version = luigi.Parameter(positional=False, description="analysis version; part of every output path")

    # On every task, not only on workflows: a task that is no workflow carries the choice to
    # the workflows it requires (req() passes it on like any shared parameter).
    ce = luigi.Parameter(
        default="", significant=False, positional=False, visibility=HIDDEN,
        description="computing element to run workflows on: a [ce:NAME] section of the config")
    workflow = luigi.Parameter(
        default="", significant=False, positional=False, visibility=HIDDEN,
        description="where workflows run (local, slurm, ...): this workflow, and the required ones that "
                    "support it; default: local, or a workflow's first type")

    #: parameters that req() never passes on
    exclude_params_req: ClassVar[frozenset[str]] = frozenset()
    #: parameters left out of the store path (besides version and insignificant ones)
    exclude_params_store: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setup_instance()

    # Luigi's __init__ stores task_id and its hash eagerly. Branch views (pylaw.workflow.
    # views) are made without __init__, so both are derived from the parameters on first
    # use instead; the value lives in the instance dict under Luigi's own name.
    @property
    def task_id(self) -> str:
        state = self.__dict__
        task_id = state.get("task_id")
        if task_id is None:
            if "param_kwargs" not in state:  # not initialised yet: Luigi's initialized() asks
                raise AttributeError("task_id")
            task_id = state["task_id"] = task_id_str(
                self.get_task_family(), self.to_str_params(only_significant=True, only_public=True))
        return task_id

    @task_id.setter
    def task_id(self, value: str) -> None:
        self.__dict__["task_id"] = value

    def __hash__(self) -> int:
        return hash(self.task_id)

    def complete(self) -> bool:
        """Luigi's rule (every output exists), with target collections checked as a whole.

        A :class:`~pylaw.TargetCollection` is iterable, so Luigi's own check would stat each
        of its targets and ignore its threshold; here it costs one listing per directory.
        """
        verdict = structure_exists(self.output())
        return super().complete() if verdict is None else verdict  # Luigi warns about no outputs

    @classmethod
    def get_params(cls) -> list[tuple[str, luigi.Parameter]]:
        """Luigi's parameter list, computed once per class, in declaration order.

        Luigi orders parameters by when they were created, so the order of two base
        classes from different modules depended on which module a process imported first
        (``pyl``, ``luigi --module`` and a batch job did not agree), and with it the
        store path. Here the order is that of the classes in the reversed MRO (bases
        first), each class's own parameters as declared: the same in every process.

        Luigi scans ``dir(cls)`` on every call, several times per instantiation; with
        thousands of branches that scan dominated the run time. Attaching a parameter to
        a pylaw class later (``setattr``, ``luigi.util.inherits``) drops the cached lists of
        that class and its subclasses (see :class:`TaskRegister`).
        """
        cached = cls.__dict__.get("_cached_params")
        if cached is None:
            rank = _declaration_rank(cls)
            cached = sorted(super().get_params(), key=lambda item: rank.get(item[0], len(rank)))
            type.__setattr__(cls, "_cached_params", cached)
        return list(cached)

    def setup_instance(self) -> None:
        """Per-instance set-up after Luigi's ``__init__``; mixins extend it cooperatively.

        Mixins sit after ``luigi.Task`` in the MRO (users write ``class T(pylaw.Task,
        pylaw.LocalWorkflow)``), so hooks defined here pass control on with ``super()``.
        """
        parent = getattr(super(), "setup_instance", None)
        if parent is not None:
            parent()

    @classmethod
    def modify_param_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Rewrite parameter values before Luigi looks up its instance cache.

        Subclasses and mixins extend it cooperatively; it must be idempotent and cheap.
        """
        parent = getattr(super(), "modify_param_values", None)
        return parent(values) if parent is not None else values

    def req(self, cls: type[luigi.Task], **overrides: Any) -> Any:
        """An instance of ``cls`` with every parameter the two tasks share, then ``overrides``."""
        own = self.param_kwargs
        excluded = self.exclude_params_req
        kwargs = {name: own[name] for name, _ in cls.get_params() if name in own and name not in excluded}
        kwargs.update(overrides)
        if "workflow" in overrides or not kwargs.get("workflow"):
            return cls(**kwargs)
        global _passing_on
        _passing_on += 1
        try:
            return cls(**kwargs)
        finally:
            _passing_on -= 1

    # -- outputs ---------------------------------------------------------------------

    def store_parts(self) -> list[str]:
        """Path parts below the store root: family, version, then ``name=value`` per parameter.

        Private parameters (``visibility=ParameterVisibility.PRIVATE``: passwords, tokens) are
        not part of the path, as they are not part of Luigi's task id: a path is shown in
        logs, listings and job files.
        """
        parts = [self.get_task_family(), sanitize_part(self.version)]
        skipped = self.exclude_params_store | {"version"}
        for name, param in self.get_params():
            if param.significant and name not in skipped and param.visibility != ParameterVisibility.PRIVATE:
                value = param.serialize(self.param_kwargs[name])
                parts.append(sanitize_part(f"{name}={value}"))
        return parts

    def local_path(self, *parts: str) -> str:
        """Absolute path in the local store for ``parts`` (each sanitised)."""
        base = self.__dict__.get("_store_dir")
        if base is None:
            root = config.store_root()
            base = ensure_inside(root, os.path.normpath(os.path.join(root, *self.store_parts())))
            self._store_dir = base
        if not parts:
            return base
        return f"{base}/{sanitize_relative('/'.join(parts))}"

    def local_target(self, *parts: str, dir: bool = False) -> LocalFileTarget | LocalDirectoryTarget:
        """A file (or with ``dir=True`` a directory) target in this task's store directory."""
        cls = LocalDirectoryTarget if dir else LocalFileTarget
        return cls.from_normalized(self.local_path(*parts))


guard_directory_outputs(Task)  # directory outputs are "missing" until their task has finished
