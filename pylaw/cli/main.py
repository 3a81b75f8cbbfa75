"""The ``pylaw`` and ``pyl`` commands.

``pylaw run Task [params]`` (or ``pyl Task [params]``) runs a task through Luigi, with a
local scheduler unless ``--central-scheduler`` (or ``[pylaw] central_scheduler``) asks for
luigid; interactive actions (``--print-status N`` ...) are performed on the root task
instead of running it, by :mod:`pylaw.interactive`, as under ``luigi --module``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

import luigi

from pylaw import config, interactive, luigi_private
from pylaw.cli.index import build_index, find_module, read_index
from pylaw.cli.shifts import build_task, load_task_class, shift_table
from pylaw.errors import PylawError

_SCHEDULER_FLAGS = ("--scheduler-host", "--scheduler-url", "--scheduler-port")


def luigi_argv(args: Sequence[str]) -> list[str]:
    """Translate a ``pyl`` command line into Luigi's."""
    argv = list(args)
    if not argv or argv[0].startswith("-"):
        raise PylawError("no task given: pyl TASK [--param value ...]")
    if "--module" not in argv:
        argv = ["--module", find_module(argv[0]), *argv]
    if "--fetch-output" in argv:  # --fetch-output DEPTH DIR -> --fetch-output DEPTH --fetch-dir DIR
        i = argv.index("--fetch-output")
        if i + 2 < len(argv) and not argv[i + 2].startswith("-"):
            argv[i + 2:i + 2] = ["--fetch-dir"]
    central = "--central-scheduler" in argv or config.section().central_scheduler
    argv = [a for a in argv if a != "--central-scheduler"]
    if not central and not any(flag in argv for flag in _SCHEDULER_FLAGS) and "--local-scheduler" not in argv:
        argv.append("--local-scheduler")
    return argv


def run(args: Sequence[str]) -> int:
    """Run (or act on) a task; returns the process exit code."""
    argv = luigi_argv(args)
    try:
        result = luigi.run(argv, detailed_summary=True)
    except interactive.ActionDone as done:  # performed on the root task, as under `luigi --module`
        return int(done.code or 0)
    ok = result.status in (luigi.LuigiStatusCode.SUCCESS, luigi.LuigiStatusCode.SUCCESS_WITH_RETRY)
    return 0 if ok else 1


def print_config() -> None:
    parser = luigi.configuration.get_config()
    # the parser skips missing and unreadable files: list only those it read
    read = [os.path.abspath(p) for p in luigi_private.config_paths() if os.path.isfile(p) and os.access(p, os.R_OK)]
    read = list(dict.fromkeys(read))  # ./luigi.cfg may also be $LUIGI_CONFIG_PATH
    print(f"# config files read: {', '.join(read) or 'none'}")
    print(f"# store root: {config.store_root()}")
    print(f"# task index: {config.index_path()}")
    for section in parser.sections():
        print(f"[{section}]")
        for key, value in parser.items(section):
            print(f"{key} = {value}")
        print()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if os.getcwd() not in sys.path:  # analysis modules are found from where pylaw runs, as with python -m
        sys.path.insert(0, os.getcwd())
    commands = argparse.ArgumentParser(prog="pylaw", description="make-like physics analyses on Luigi")
    sub = commands.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run a task: pylaw run TASK [params]", add_help=False)
    index = sub.add_parser("index", help="index the tasks of the configured modules")
    index.add_argument("--module", action="append", help="module to index (default: [pylaw] modules)")
    sub.add_parser("list", help="list the indexed tasks")
    sub.add_parser("config", help="print the effective configuration")
    shifts = sub.add_parser("shifts", help="table of which task implements, inherits or reuses each shift")
    shifts.add_argument("module", help="module defining the task")
    shifts.add_argument("task", help="the most downstream task of the table")
    shifts.add_argument("params", nargs=argparse.REMAINDER, help="task parameters, e.g. --n-chunks 2")
    try:
        if args[:1] == ["run"]:
            return run(args[1:])
        ns = commands.parse_args(args)
        if ns.command == "index":
            tasks = build_index(ns.module)
            print(f"indexed {len(tasks)} tasks in {config.index_path()}")
        elif ns.command == "list":
            tasks = read_index() or build_index()
            for family, module in tasks.items():
                print(f"{family:40s} {module}")
        elif ns.command == "config":
            print_config()
        elif ns.command == "shifts":
            print(shift_table(build_task(load_task_class(ns.module, ns.task), ns.params)))
        return 0
    except PylawError as exc:
        print(f"pylaw: error: {exc}", file=sys.stderr)
        return 2


def pyl(argv: Sequence[str] | None = None) -> int:
    """``pyl TASK ...``: short for ``pylaw run TASK ...``."""
    return main(["run", *(sys.argv[1:] if argv is None else argv)])


def _exit_quietly_on_closed_pipe(command: Callable[[], int]) -> None:
    """``pyl ... --print-status -1 | head`` must not end in a traceback."""
    try:
        code = command()
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


def entry_main() -> None:
    _exit_quietly_on_closed_pipe(main)


def entry_pyl() -> None:
    _exit_quietly_on_closed_pipe(pyl)
