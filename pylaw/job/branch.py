"""Run one branch of a workflow inside a batch job: ``python -m pylaw.job.branch``.

Arguments: ``--module MODULE TaskFamily --name=value ... --branch=N`` (an implicit
boolean parameter that is true appears as a bare ``--name``). Values are parsed here
with each parameter's own ``parse()``, not by Luigi's command-line parser: argparse
would take ``--n=50`` for an abbreviation of ``--no-lock`` and a value starting with
``-`` for an option, while a job must pass every value through verbatim.

The branch runs with a local scheduler, with its missing requirements (which a
``--pilot`` workflow did not run beforehand), and its outputs are checked afterwards,
because Luigi counts a ``run()`` that wrote nothing as a success. Every workflow met in
the job runs locally, whatever its type: a job never submits jobs itself (an upstream
workflow it has to run would otherwise start its own submission from the worker node). Exit codes (read by
the job wrapper): 0 success, 4 the task failed, 5 it ran but outputs are missing,
2 the arguments are wrong.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import luigi
from luigi.task import flatten
from luigi.task_register import Register

from pylaw.errors import MissingOutputError, UsageError
from pylaw.workflow.base import force_workflow_type
from pylaw.workflow.local import LocalWorkflowProxy

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_TASK = 4
EXIT_OUTPUTS = 5


def parse(argv: Sequence[str]) -> tuple[str, str, dict[str, str | bool]]:
    """``["--module", M, Family, "--a=1", "--flag"]`` -> ``(M, Family, {"a": "1", "flag": True})``."""
    if len(argv) < 3 or argv[0] != "--module":
        raise UsageError("usage: python -m pylaw.job.branch --module MODULE TaskFamily [--name=value ...]")
    module, family, values = argv[1], argv[2], {}
    for token in argv[3:]:
        if not token.startswith("--"):
            raise UsageError(f"unexpected argument {token!r}: parameters are passed as --name=value")
        name, sep, value = token[2:].partition("=")
        values[name.replace("-", "_")] = value if sep else True
    return module, family, values


def make_task(module: str, family: str, values: dict[str, str | bool]) -> Any:
    importlib.import_module(module)
    cls = Register.get_task_cls(family)
    params = dict(cls.get_params())
    unknown = sorted(set(values) - set(params))
    if unknown:
        raise UsageError(f"{family} has no parameters {', '.join(unknown)}")
    kwargs = {name: value if isinstance(value, bool) else params[name].parse(value)
              for name, value in values.items()}
    return cls(**kwargs)


_failures: list[BaseException] = []


def _record_failure(_: Any, exc: BaseException) -> None:
    _failures.append(exc)


def run_task(task: Any) -> int:
    """Run one branch task with a local scheduler and check its outputs: an exit code of this module.

    Shared by this module (one branch per process) and by pilot jobs (:mod:`pylaw.job.pilot`,
    many branches in one process), so both judge a branch the same way.
    """
    luigi.Task.event_handler(luigi.Event.FAILURE)(_record_failure)  # a set: registered once however often
    del _failures[:]
    result = luigi.build([task], local_scheduler=True, detailed_summary=True)
    if not result.scheduling_succeeded:
        print(f"pylaw-job: {task} failed:\n{result.summary_text}", file=sys.stderr)
        if _failures and all(isinstance(exc, MissingOutputError) for exc in _failures):
            return EXIT_OUTPUTS  # it ran, but did not write what it declares
        return EXIT_TASK
    missing = [str(target) for target in flatten(task.output()) if not target.exists()]
    if missing:
        print(f"pylaw-job: {task} ran but did not produce {', '.join(missing[:5])}", file=sys.stderr)
        return EXIT_OUTPUTS
    return EXIT_OK


def main(argv: Sequence[str]) -> int:
    force_workflow_type("local", LocalWorkflowProxy)
    try:
        task = make_task(*parse(argv))
    except UsageError as exc:
        print(f"pylaw-job: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_task(task)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
