"""The task index: which module defines which task family.

``pyl TaskName`` must start fast without importing every analysis module, so
``pylaw index`` imports the configured modules once and records ``family -> module``
in a JSON file; later runs import only the module they need.
"""

from __future__ import annotations

import importlib
import json
import os
import traceback
from collections.abc import Iterable

import luigi
from luigi.task_register import Register

from pylaw import config
from pylaw.errors import ConfigError, TaskNotFoundError
from pylaw.target.local import LocalFileTarget


def import_task_module(name: str) -> None:
    """Import an analysis module; a broken one is a :class:`ConfigError` that says where and why."""
    try:
        importlib.import_module(name)
    except SyntaxError as exc:
        line = f"\n    {exc.text.rstrip()}" if exc.text else ""
        raise ConfigError(f"syntax error in task module {name!r} at {exc.filename}:{exc.lineno}: "
                          f"{exc.msg}{line}") from None
    except ModuleNotFoundError as exc:
        if exc.name != name and not name.startswith(f"{exc.name}."):
            raise ConfigError(f"task module {name!r} imports {exc.name!r}, which is not installed") from None
        raise ConfigError(f"cannot import task module {name!r}: no such module; check [pylaw] modules "
                          f"or --module and PYTHONPATH") from None
    except ImportError as exc:
        raise ConfigError(f"cannot import task module {name!r}: {exc}") from None
    except Exception as exc:  # the module's own code failed while importing
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        raise ConfigError(f"importing task module {name!r} failed at {frame.filename}:{frame.lineno}: "
                          f"{type(exc).__name__}: {exc}") from None


def collect_tasks(modules: Iterable[str]) -> dict[str, str]:
    """Import ``modules`` and map every task family defined in them to its module."""
    names = list(modules)
    for name in names:
        import_task_module(name)
    found: dict[str, str] = {}
    for cls in Register._get_reg().values():
        if not isinstance(cls, type) or not issubclass(cls, luigi.Task) or issubclass(cls, luigi.Config):
            continue
        if cls.__module__ in names:
            found[cls.get_task_family()] = cls.__module__
    return dict(sorted(found.items()))


def build_index(modules: Iterable[str] | None = None) -> dict[str, str]:
    """Index the given (default: configured) modules and write the index file."""
    module_list = list(modules) if modules is not None else config.configured_modules()
    tasks = collect_tasks(module_list)
    path = config.index_path()
    try:
        LocalFileTarget(path).dump({"modules": module_list, "tasks": tasks})
    except OSError as exc:
        raise ConfigError(f"cannot write the task index {path}: {exc.strerror or exc}; point ${config.INDEX_ENV} "
                          f"or [pylaw] index_file at a writable file") from None
    return tasks


def read_index() -> dict[str, str]:
    """The indexed tasks, or an empty dict if there is no index yet."""
    path = config.index_path()
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            data = json.load(f)
        return dict(data["tasks"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"the task index {path} is corrupt ({exc}); rebuild it with `pylaw index`") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the task index {path}: {exc.strerror or exc}; point ${config.INDEX_ENV} "
                          f"or [pylaw] index_file at a readable file") from None


def find_module(family: str) -> str:
    """The module defining ``family``, imported; rebuilds a stale index once before giving up."""
    tasks = read_index()
    if family in tasks:
        try:
            import_task_module(tasks[family])
            return tasks[family]
        except ConfigError:  # the index may point at a module that was renamed or removed
            tasks = {}
    if family not in tasks:
        tasks = build_index()
    if family not in tasks:
        import difflib

        close = difflib.get_close_matches(family, tasks, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise TaskNotFoundError(
            f"no indexed module defines the task {family!r} (modules: "
            f"{', '.join(config.configured_modules()) or 'none configured'}).{hint} "
            f"Pass --module MODULE or list it in [pylaw] modules.")
    return tasks[family]
