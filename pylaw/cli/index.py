"""The task index: which module defines which task family.

``pyl TaskName`` must start fast without importing every analysis module, so
``pylaw index`` imports the configured modules once and records ``family -> module``
in a JSON file; later runs import only the module they need.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterable

import luigi
from luigi.task_register import Register

from pylaw import config
from pylaw.errors import ConfigError, TaskNotFoundError
from pylaw.target.local import LocalFileTarget


def collect_tasks(modules: Iterable[str]) -> dict[str, str]:
    """Import ``modules`` and map every task family defined in them to its module."""
    names = list(modules)
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"cannot import task module {name!r}: {exc}; check [pylaw] modules "
                              f"or --module and PYTHONPATH") from exc
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
    LocalFileTarget(config.index_path()).dump({"modules": module_list, "tasks": tasks})
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


def find_module(family: str) -> str:
    """The module defining ``family``; rebuilds a stale index once before giving up."""
    tasks = read_index()
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
