"""The ``pylaw`` and ``pyl`` commands.

``pylaw run Task [params]`` (or ``pyl Task [params]``) runs a task through Luigi, with a
local scheduler unless ``--central-scheduler`` (or ``[pylaw] central_scheduler``) asks for
luigid; interactive actions (``--print-status N`` ...) are performed on the root task
instead of running it, by :mod:`pylaw.interactive`, as under ``luigi --module``.
"""

from __future__ import annotations

import argparse
import configparser
import difflib
import os
import socket
import sys
import urllib.parse
from collections.abc import Callable, Sequence

import luigi
from luigi.cmdline_parser import CmdlineParser
from luigi.task_register import Register

from pylaw import __version__ as pylaw_version
from pylaw import config, interactive, luigi_private
from pylaw.ce import configured as configured_computing_elements
from pylaw.cli import preflight
from pylaw.cli import provenance as provenance_cli
from pylaw.cli.execution import execute
from pylaw.cli.index import build_index, find_module, import_task_module, read_index
from pylaw.cli.init import write_config
from pylaw.cli.shifts import build_task, load_task_class, shift_table
from pylaw.errors import (
    CommandError,
    PylawError,
    UsageError,
)

_SCHEDULER_FLAGS = ("--scheduler-host", "--scheduler-url", "--scheduler-port")

#: ``pyl``'s exit codes (docs/cli.rst); ``pylaw init`` writes the same into ``[retcode]`` for ``luigi``
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_HELD = 0, 1, 2, 3


def _flag(token: str) -> str:
    return token.partition("=")[0] if token.startswith("--") else token


def luigi_argv(args: Sequence[str]) -> list[str]:
    """Translate a ``pyl`` command line into Luigi's (``--module M`` found through the index, imported)."""
    argv = list(args)
    module = None
    if argv[:1] == ["--module"] or (argv and argv[0].startswith("--module=")):  # Luigi's order: --module M Task
        module = argv[1] if argv[0] == "--module" and len(argv) > 1 else argv[0].partition("=")[2]
        argv = argv[2:] if argv[0] == "--module" else argv[1:]
    if not argv or argv[0].startswith("-"):
        raise UsageError("no task given: pyl TASK [--param value ...] (pyl --help for more)")
    flags = [_flag(a) for a in argv]
    if module is None and "--module" in flags:
        i = flags.index("--module")
        module = argv[i].partition("=")[2] if "=" in argv[i] else (argv[i + 1] if i + 1 < len(argv) else "")
        del argv[i:i + (1 if "=" in argv[i] else 2)]
        flags = [_flag(a) for a in argv]
    if module:
        import_task_module(module)
    else:
        module = find_module(argv[0])
    argv = ["--module", module, *argv]
    if "--fetch-output" in argv:  # --fetch-output DEPTH DIR -> --fetch-output DEPTH --fetch-dir DIR
        i = argv.index("--fetch-output")
        if i + 2 < len(argv) and not argv[i + 2].startswith("-"):
            argv[i + 2:i + 2] = ["--fetch-dir"]
    flags = [_flag(a) for a in argv]
    asked_central = "--central-scheduler" in flags
    scheduler = [f for f in flags if f in _SCHEDULER_FLAGS]
    if asked_central and "--local-scheduler" in flags:
        raise UsageError("--central-scheduler contradicts --local-scheduler: choose one scheduler")
    central = asked_central or config.section().central_scheduler
    argv = [a for a in argv if _flag(a) != "--central-scheduler"]
    if not central and not scheduler and "--local-scheduler" not in flags:
        argv.append("--local-scheduler")
    return argv


def run(args: Sequence[str]) -> int:
    """Run (or act on) a task; returns the process exit code."""
    argv = luigi_argv(args)
    preflight.check(argv)
    warn_unknown_sections()
    try:
        with CmdlineParser.global_instance(argv) as parser:
            build_root_task(parser)  # performs an interactive action on it, as under `luigi --module`
            check_scheduler_reachable()
    except interactive.ActionDone as done:
        return int(done.code or 0)
    # progress, signals (130/143), Luigi's pid lock and luigid's other workers (EXIT_HELD), the summary
    return execute(argv, exit_code, held=EXIT_HELD)


def warn_unknown_sections() -> None:
    """A misspelled ``[Selection]`` section would be ignored without a word."""
    known = set(Register.task_names())
    for name in config.unknown_sections(known):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean [{close[0]}]?" if close else ""
        print(f"pylaw: warning: config section [{name}] names no task or config class, it is ignored{hint}",
              file=sys.stderr)


def check_scheduler_reachable(timeout: float = 5.0) -> None:
    """Luigi retries an unreachable luigid for minutes, then runs nothing: say so at once."""
    core = luigi.interface.core()
    if core.local_scheduler:
        return
    url = urllib.parse.urlsplit(core.scheduler_url or f"http://{core.scheduler_host}:{core.scheduler_port}")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "localhost", port), timeout=timeout).close()
    except OSError as exc:
        raise UsageError(f"cannot reach the central scheduler (luigid) at {url.geturl()}: "
                         f"{exc.strerror or exc}; start luigid there, or run with the local scheduler") from None


def build_root_task(parser: CmdlineParser) -> luigi.Task:
    """The task the command line names; a bad value or branch selection is a usage error."""
    try:
        return parser.get_task_obj()  # pylaw's own errors (bad branch, shift, ...) are PylawErrors already
    except luigi.parameter.ParameterException as exc:
        raise UsageError(str(exc)) from None


def exit_code(status: luigi.LuigiStatusCode) -> int:
    """``pyl``'s exit code for Luigi's summary of a run."""
    if status in (luigi.LuigiStatusCode.SUCCESS, luigi.LuigiStatusCode.SUCCESS_WITH_RETRY):
        return EXIT_OK
    if status == luigi.LuigiStatusCode.NOT_RUN:  # another worker of the scheduler runs it
        return EXIT_HELD
    if status == luigi.LuigiStatusCode.SCHEDULING_FAILED:
        return EXIT_USAGE
    return EXIT_FAILED


def print_computing_elements() -> None:
    elements = configured_computing_elements()
    if not elements:
        print("no computing elements: add [ce:NAME] sections with 'type = ...' to luigi.cfg (docs: Computing "
              "elements); --local runs here")
    for element in elements.values():
        settings = ", ".join(f"{key}={value}" for key, value in element.settings.items())
        print(f"{element.name:20s} {element.type:10s} {settings}")


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


PYL_USAGE = """usage: pyl TASK [--param value ...] [luigi options]
       pyl --module MODULE TASK ...        (Luigi's order works too)

Runs TASK and whatever it requires that is missing, with a local scheduler unless
--central-scheduler or --scheduler-host/--scheduler-port/--scheduler-url is given.
Instead of running: --print-deps/--print-status/--print-output DEPTH,
--remove-output DEPTH [--yes], --fetch-output DEPTH [DIR].
`pyl TASK --help` lists the task's parameters. Exit codes: 0 ok, 1 a task failed,
2 usage or configuration error, 3 already running elsewhere (docs/cli.rst)."""


def _add_cwd_to_path() -> None:
    """Analysis modules are found from where pylaw runs, as with ``python -m``.

    With ``PYTHONSAFEPATH`` (``python -P``) the working directory goes last, so a file planted
    there cannot shadow an installed package.
    """
    cwd = os.getcwd()
    if cwd in sys.path:
        return
    if getattr(sys.flags, "safe_path", False):  # Python >= 3.11
        sys.path.append(cwd)
    else:
        sys.path.insert(0, cwd)


def _commands() -> argparse.ArgumentParser:
    commands = argparse.ArgumentParser(prog="pylaw", description="make-like physics analyses on Luigi")
    commands.add_argument("--version", action="version", version=f"pylaw {pylaw_version}")
    sub = commands.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="run a task: pylaw run TASK [params] (pyl TASK ... is short for it)", add_help=False)
    init = sub.add_parser("init", help="write a luigi.cfg for a new analysis (with exit codes for luigi)")
    init.add_argument("--module", required=True, help="comma-separated modules defining the tasks")
    init.add_argument("--store", default="store", help="root directory of local outputs (default: store)")
    init.add_argument("--force", action="store_true", help="replace an existing luigi.cfg")
    init.add_argument("path", nargs="?", default=".", help="directory or file to write (default: ./luigi.cfg)")
    index = sub.add_parser("index", help="index the tasks of the configured modules")
    index.add_argument("--module", action="append", help="module to index (default: [pylaw] modules)")
    sub.add_parser("list", help="list the indexed tasks")
    sub.add_parser("config", help="print the effective configuration")
    ce = sub.add_parser("ce", help="the computing elements of the config ([ce:NAME] sections)")
    ce.add_argument("action", choices=["list"], help="list: name, type and settings of each")
    shifts = sub.add_parser("shifts", help="table of which task implements, inherits or reuses each shift")
    shifts.add_argument("module", help="module defining the task")
    shifts.add_argument("task", help="the most downstream task of the table")
    shifts.add_argument("params", nargs=argparse.REMAINDER, help="task parameters, e.g. --n-chunks 2")
    check = sub.add_parser("verify", help="check a task's remote outputs against their recorded checksums "
                                          "(exit 1 on a mismatch or a missing file)")
    check.add_argument("--download", action="store_true",
                       help="compute checksums from fresh downloads instead of asking the storage")
    check.add_argument("module", help="module defining the task")
    check.add_argument("task", help="the task whose outputs to verify")
    check.add_argument("params", nargs=argparse.REMAINDER, help="task parameters, e.g. --version v1")
    provenance_cli.add_commands(sub)
    _add_monitoring_commands(sub)
    return commands


def _add_monitoring_commands(sub: argparse._SubParsersAction) -> None:
    """``status`` and ``graph``: their task parameters follow the task name (parse_known_args)."""
    status = sub.add_parser("status", allow_abbrev=False,
                            help="dependency tree, branch counts and job states of a task (batch system not asked)")
    graph = sub.add_parser("graph", allow_abbrev=False,
                           help="dependency graph coloured by status: DOT on stdout, or --output FILE.svg|png")
    for parser in (status, graph):
        parser.add_argument("module", help="module defining the task")
        parser.add_argument("task", help="the task at the top of the tree")
        parser.add_argument("--depth", type=int, default=-1, help="levels of requirements to show (-1: all)")
        parser.add_argument("--refresh", action="store_true",
                            help="ask the batch system for the jobs' states (once per workflow, in bulk)")
    status.add_argument("--json", action="store_true", help="print the pylaw-status/1 JSON document")
    graph.add_argument("--output", default="", help="write FILE.svg or FILE.png (needs Graphviz) instead of DOT")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    _add_cwd_to_path()
    try:
        if args[:1] == ["run"]:
            if args[1:2] in (["--help"], ["-h"]):
                print(PYL_USAGE)
                return EXIT_OK
            return run(args[1:])
        commands = _commands()
        ns, params = commands.parse_known_args(args)
        if params and ns.command not in ("status", "graph"):
            commands.error(f"unrecognized arguments: {' '.join(params)}")
        if ns.command == "init":
            path = write_config(ns.path, ns.module, ns.store, ns.force)
            print(f"wrote {path}: set LUIGI_CONFIG_PATH={os.path.abspath(path)} or run from its directory")
        elif ns.command == "index":
            tasks = build_index(ns.module)
            print(f"indexed {len(tasks)} tasks in {config.index_path()}")
        elif ns.command == "list":
            tasks = read_index() or build_index()
            for family, module in tasks.items():
                print(f"{family:40s} {module}")
        elif ns.command == "config":
            print_config()
        elif ns.command == "ce":
            print_computing_elements()
        elif ns.command == "shifts":
            import_task_module(ns.module)
            print(shift_table(build_task(load_task_class(ns.module, ns.task), ns.params)))
        elif ns.command == "verify":
            from pylaw.cli import verify

            import_task_module(ns.module)
            task = verify.build_task(load_task_class(ns.module, ns.task), ns.params)
            return verify.verify(task, download=ns.download)
        elif ns.command in ("status", "graph"):
            return _monitor(ns, params)
        elif ns.command in ("provenance", "reproduce"):
            return provenance_cli.dispatch(ns.command, ns.location, getattr(ns, "json", False),
                                           getattr(ns, "run", False))
        return EXIT_OK
    except configparser.Error as exc:
        print(f"pylaw: error: malformed configuration: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except PylawError as exc:
        print(f"pylaw: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _monitor(ns: argparse.Namespace, params: list[str]) -> int:
    from pylaw.cli import graph, status

    if ns.depth < -1:
        raise UsageError(f"--depth {ns.depth}: give -1 (all) or a depth >= 0")
    task = status.build_root(ns.module, ns.task, params, ns.command)
    try:
        if ns.command == "status":
            return status.show(task, sys.stdout, ns.depth, ns.refresh, ns.json)
        return graph.show(task, sys.stdout, ns.depth, ns.refresh, ns.output)
    except CommandError as exc:  # --refresh: the batch system did not answer; not a usage error
        print(f"pylaw: error: --refresh could not ask the batch system: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def pyl(argv: Sequence[str] | None = None) -> int:
    """``pyl TASK ...``: short for ``pylaw run TASK ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in ([], ["--help"], ["-h"]):
        print(PYL_USAGE)
        return EXIT_OK if args else EXIT_USAGE
    if args == ["--version"]:
        print(f"pylaw {pylaw_version}")
        return EXIT_OK
    return main(["run", *args])


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
