"""Luigi's tests run with ``luigi.Task`` (and its two plain subclasses) as pylaw tasks.

Imported at interpreter start-up (``site/sitecustomize.py``) by the test run and by the
Python processes Luigi's command-line tests start, before any of Luigi's test modules, so
their ``class Foo(luigi.Task)`` (or ``from luigi import Task``) derive from pylaw.Task.
Only the names in the ``luigi`` package are replaced: ``luigi.task.Task`` stays Luigi's, so
Luigi's own ``isinstance(x, Task)`` checks still accept every task. The classes here are in
Luigi's registry under Luigi's names (``load_task("luigi", "ExternalTask", {})`` finds the
pylaw one, as the most derived class of that name).
"""

from __future__ import annotations

import luigi

import pylaw


class Task(pylaw.Task):
    """A pylaw task with a default version: Luigi's test tasks never pass one."""

    version = luigi.Parameter(default="v1", positional=False, description="analysis version")


class WrapperTask(Task, luigi.WrapperTask):
    """Luigi's ``WrapperTask`` (complete when its requirements are) on the pylaw task above."""


class ExternalTask(Task, luigi.ExternalTask):
    """Luigi's ``ExternalTask`` (no ``run``) on the pylaw task above."""


luigi.Task = Task  # type: ignore[misc]
luigi.WrapperTask = WrapperTask  # type: ignore[misc]
luigi.ExternalTask = ExternalTask  # type: ignore[misc]
