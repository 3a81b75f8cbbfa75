"""Interactive actions on a task tree instead of running it.

``--print-deps``, ``--print-status``, ``--print-output``, ``--remove-output`` and
``--fetch-output`` walk the requirement tree down to a depth (``-1``: all the way) and
report or act on each task's outputs. A workflow's output is shown as one collection
(``partial 12/20`` and its missing branches as ranges), checked with one listing per
directory, or as ``waiting for Task(...)`` while its branch map cannot be built yet.

On the command line (``pyl`` and ``luigi --module`` alike) they are global options (the
``[actions]`` section). Luigi builds the root task of its command line before scheduling
anything; :func:`perform_if_root`, called by :class:`pylaw.task.TaskRegister` for every
task built outside another task's construction, performs the action on that instance and
ends the command with its exit code (:class:`ActionDone`), so nothing runs and Luigi
needs no patch. One action per command: two together are refused before anything is done.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import luigi
from luigi.cmdline_parser import CmdlineParser
from luigi.task import flatten

from pylaw import config, fetch
from pylaw.errors import PylawError
from pylaw.staleness import StalenessChecker
from pylaw.target.base import DirectoryTarget, FileSystemTarget
from pylaw.target.collection import PendingCollection, TargetCollection, existing_leaves, iter_leaves

#: outcomes counted besides those of :func:`pylaw.fetch.fetch`
FAILED, MISSING = "failed", "missing"


def walk(task: luigi.Task, max_depth: int) -> Iterator[tuple[int, luigi.Task, bool]]:
    """``(depth, task, seen_before)`` for the task tree, depth first, each task expanded once."""
    seen: set[str] = set()

    def visit(current: luigi.Task, depth: int) -> Iterator[tuple[int, luigi.Task, bool]]:
        repeated = current.task_id in seen
        yield depth, current, repeated
        if repeated or (0 <= max_depth <= depth):
            return
        seen.add(current.task_id)
        for dep in flatten(current.requires()):
            yield from visit(dep, depth + 1)

    yield from visit(task, 0)


def describe_task(task: luigi.Task) -> str:
    """``Family(params)``: significant parameters (the effective shift among them), no defaults noise."""
    return f"{task.task_family}({_params(task)})"


def _params(task: luigi.Task) -> str:
    params = task.to_str_params(only_significant=True)
    params.pop("version", None)
    if params.get("branch") == "-1":
        params.pop("branch")
    if params.get("branches") == "":
        params.pop("branches")
    return ", ".join(f"{k}={v}" for k, v in params.items())


def output_status(output: Any, label: str = "elements") -> tuple[str, list[str]]:
    """``("complete" | "partial n/m" | "missing" | "waiting for ...", [lines])`` for a task's output.

    A collection gives one line with its count and location, and one naming its missing
    ``label`` (branches of a workflow) as ranges.
    """
    pending = [o for o in _top_level(output) if isinstance(o, PendingCollection)]
    if pending:  # a workflow whose branch map is built from upstream outputs that are missing
        waiting = ", ".join(describe_task(task) for p in pending for task in p.waiting_for)
        return f"waiting for {waiting}", ["branches unknown until then"]
    collections = [o for o in _top_level(output) if isinstance(o, TargetCollection)]
    leaves = [o for o in _top_level(output) if not isinstance(o, TargetCollection)]
    lines, done, total = [], 0, 0
    for collection in collections:
        existence = collection.existence()
        missing = [key for key, exists in existence.items() if not exists]
        n, m = len(existence) - len(missing), len(existence)
        done, total = done + n, total + m
        lines.append(f"{n}/{m} in {_collection_location(collection)}")
        if missing and n:
            lines.append(f"missing {label}: {describe_keys(missing)}")
    for leaf in leaves:
        exists = leaf.exists()
        done, total = done + exists, total + 1
        lines.append(f"{'✓' if exists else '✗'} {getattr(leaf, 'path', leaf)}")
    if total == 0:
        return "no outputs", lines
    state = "complete" if done == total else "missing" if done == 0 else f"partial {done}/{total}"
    return state, lines


#: ranges shown in a line of missing branches; the rest is counted
MAX_RANGES = 50


def describe_keys(keys: list[Any]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5,9"`` (numbers as ranges, other keys as they are), at most MAX_RANGES parts."""
    parts = _ranges(sorted(keys)) if all(type(key) is int for key in keys) else [str(key) for key in keys]
    text = ",".join(parts[:MAX_RANGES])
    if len(parts) > MAX_RANGES:
        text += f",... ({len(keys)} in {len(parts)} ranges)"
    return text


def _ranges(numbers: list[int]) -> list[str]:
    parts: list[str] = []
    start = previous = numbers[0]
    for number in numbers[1:]:
        if number != previous + 1:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = number
        previous = number
    parts.append(str(start) if start == previous else f"{start}-{previous}")
    return parts


def _top_level(output: Any) -> list[Any]:
    if isinstance(output, TargetCollection):
        return [output]
    if isinstance(output, dict):
        return [x for value in output.values() for x in _top_level(value)]
    if isinstance(output, (list, tuple)):
        return [x for value in output for x in _top_level(value)]
    return [] if output is None else [output]


def _collection_location(collection: TargetCollection) -> str:
    directories = sorted({str(getattr(leaf, "path", "")).rpartition("/")[0] or "/" for leaf in iter_leaves(collection)})
    if len(directories) == 1:
        return directories[0]
    return f"{len(directories)} directories, e.g. {directories[0]}" if directories else "nowhere"


def print_deps(task: luigi.Task, depth: int, out: IO) -> None:
    for level, current, repeated in walk(task, depth):
        suffix = "  (shown above)" if repeated else ""
        print(f"{'    ' * level}> {describe_task(current)}{suffix}", file=out)


def print_status(task: luigi.Task, depth: int, out: IO, stale: bool = False) -> int:
    """Print the status down to ``depth``; with ``stale``, also what the provenance records say.

    Returns the number of stale tasks found (always 0 without ``stale``: no record is read).
    """
    checker = StalenessChecker() if stale else None
    found = 0
    for level, current, repeated in walk(task, depth):
        indent = "    " * level
        if repeated:
            print(f"{indent}> {describe_task(current)}  (shown above)", file=out)
            continue
        is_workflow = getattr(current, "is_workflow", None)
        state, lines = output_status(current.output(), "branches" if is_workflow and is_workflow() else "elements")
        if checker is not None and state != "missing" and not state.startswith("waiting"):
            verdict = checker.check(current)
            found += bool(verdict.stale)
            state += ", STALE" if verdict.stale else ""
            lines += [f"stale: {reason}" for reason in verdict.stale] + [f"note: {note}" for note in verdict.notes]
        print(f"{indent}> {describe_task(current)}: {state}", file=out)
        for line in lines:
            print(f"{indent}    {line}", file=out)
    if checker is not None:
        print(f"{found} stale task(s)" + (": --remove-output DEPTH --stale removes their outputs" if found else ""),
              file=out)
    return found


def print_output(task: luigi.Task, depth: int, out: IO) -> None:
    for _, current, repeated in walk(task, depth):
        if not repeated:
            for leaf in iter_leaves(current.output()):
                print(getattr(leaf, "path", leaf), file=out)


def _existing_outputs(task: luigi.Task, depth: int) -> tuple[list[FileSystemTarget], int]:
    """The existing file-system outputs down to ``depth`` (checked a directory at a time), and how many are missing."""
    leaves = [leaf for _, current, repeated in walk(task, depth) if not repeated
              for leaf in iter_leaves(current.output()) if isinstance(leaf, FileSystemTarget)]
    flags = existing_leaves(leaves)
    return [leaf for leaf, exists in zip(leaves, flags, strict=True) if exists], flags.count(False)


def _stale_outputs(task: luigi.Task, depth: int) -> list[FileSystemTarget]:
    """The existing outputs, down to ``depth``, of the stale tasks (of a workflow: its stale branches)."""
    checker, leaves = StalenessChecker(), []
    for _, current, repeated in walk(task, depth):
        verdict = checker.check(current) if not repeated else None
        if verdict is None or not verdict.stale:
            continue
        if verdict.stale_branches:
            outputs = [current.as_branch(number).output() for number in verdict.stale_branches]  # type: ignore
        else:
            outputs = [current.output()]
        leaves += [leaf for output in outputs for leaf in iter_leaves(output) if isinstance(leaf, FileSystemTarget)]
    return [leaf for leaf, exists in zip(leaves, existing_leaves(leaves), strict=True) if exists]


def remove_output(task: luigi.Task, depth: int, out: IO, confirm: Callable[[str], bool],
                  stale: bool = False) -> Counter[str]:
    """Remove existing outputs (with ``stale``: of stale tasks only) down to ``depth`` after one confirmation.

    Counts ``removed`` and ``failed``.
    """
    existing = _stale_outputs(task, depth) if stale else _existing_outputs(task, depth)[0]
    outcomes: Counter[str] = Counter()
    if not existing:
        print("nothing stale to remove" if stale else "nothing to remove", file=out)
        return outcomes
    for leaf in existing:
        print(f"  {leaf.path}", file=out)
    if not confirm(f"remove these {len(existing)} outputs?"):
        print("nothing removed", file=out)
        return outcomes
    for leaf in existing:
        try:
            outcomes["removed"] += bool(leaf.remove())
        except OSError as exc:  # the others are still removed
            outcomes[FAILED] += 1
            print(f"failed to remove {leaf.path}: {exc}", file=out)
    print(f"removed {outcomes['removed']} outputs", file=out)
    return outcomes


def fetch_output(task: luigi.Task, depth: int, directory: str, out: IO, overwrite: bool = False) -> Counter[str]:
    """Copy the existing outputs down to ``depth`` below ``directory``, mirroring where they are stored.

    Returns how many outputs had each outcome of :func:`pylaw.fetch.fetch`, or were missing or failed.
    """
    existing, missing = _existing_outputs(task, depth)
    root = config.store_root()
    outcomes: Counter[str] = Counter({MISSING: missing} if missing else {})
    records = fetch.RecordCopier(directory)  # each copy keeps its provenance record
    try:
        for leaf in existing:
            _fetch_one(leaf, fetch.mirrored_path(leaf, directory, root), overwrite, outcomes, records, out)
    finally:
        records.close()
    summary = ", ".join(f"{outcomes[key]} {key}" for key in (fetch.FETCHED, fetch.REPLACED, fetch.ALREADY_THERE,
                                                              fetch.REFUSED, FAILED, MISSING) if outcomes[key])
    print(f"{summary or 'no outputs'} (in {os.path.abspath(directory)})", file=out)
    return outcomes


def _fetch_one(leaf: Any, destination: str, overwrite: bool, outcomes: Counter[str], records: fetch.RecordCopier,
               out: IO) -> None:
    kind = "directory" if isinstance(leaf, DirectoryTarget) else "file"
    try:
        outcome = fetch.fetch(leaf, destination, overwrite)
    except OSError as exc:  # remote errors included; the other outputs are still fetched
        outcomes[FAILED] += 1
        print(f"failed {kind} {leaf.path} -> {destination}: {exc}", file=out)
        return
    outcomes[outcome] += 1
    if outcome == fetch.REFUSED:
        print(f"refused {kind} {leaf.path}: {destination} exists with other content", file=out)
        return
    print(f"{outcome} {kind} {leaf.path} -> {destination}", file=out)
    records.copy(leaf, destination)


# -- the command line: ``--print-status 1`` and friends, through ``pyl`` and ``luigi`` alike ----

class actions(luigi.Config):  # noqa: N801 - the class name is the config section name
    """The interactive actions: global options of the command line, not task parameters.

    ``use_cmdline_section = False`` is Luigi's public way (its ``[core]`` options use it)
    to accept ``--print-status 1`` without a section prefix, after any task, through
    ``pyl`` and ``luigi --module`` alike. As parameters of every task their names alone
    (71 characters) made Luigi's execution summary print each pylaw task as ``Family(...)``.
    """

    use_cmdline_section = False

    print_deps = luigi.OptionalIntParameter(
        default=None, description="print the dependency tree down to DEPTH (-1: all)")
    print_status = luigi.OptionalIntParameter(default=None, description="print output status down to DEPTH (-1: all)")
    print_output = luigi.OptionalIntParameter(
        default=None, description="print output locations down to DEPTH (-1: all)")
    remove_output = luigi.OptionalIntParameter(default=None, description="remove outputs down to DEPTH, asking first")
    fetch_output = luigi.OptionalIntParameter(default=None, description="copy outputs down to DEPTH into --fetch-dir")
    fetch_dir = luigi.Parameter(default=".", description="target of --fetch-output")
    # not --overwrite: a global option's name would clash with any task parameter called so
    fetch_overwrite = luigi.BoolParameter(
        default=False, description="let --fetch-output replace existing files with other content")
    yes = luigi.BoolParameter(default=False, description="answer yes to questions")
    stale = luigi.BoolParameter(
        default=False, description="with --print-status: flag stale outputs (reads provenance records); with "
                                   "--remove-output: remove only those")


ACTIONS = ("print_deps", "print_status", "print_output", "remove_output", "fetch_output")

#: exit codes of an action: done; done in part (an output refused or failed); usage error (nothing done)
OK, PARTLY_FAILED, USAGE_ERROR = 0, 1, 2


class ActionDone(SystemExit):
    """Ends the command after an interactive action, so that Luigi runs nothing; ``code`` is the exit code.

    A SystemExit, not a PylawError: Luigi's command line reports any ``Exception`` as
    a crash, but lets SystemExit end the process with its code.
    """


@dataclass
class _Request:
    """The action asked for on one command line, and whether it was performed.

    ``error``: the command line cannot be carried out (malformed or combined actions,
    ``--workers 0``); reported on the root task, before Luigi schedules anything.
    """

    parser: CmdlineParser
    action: tuple[str, int] | None
    error: str | None
    performed: bool = False


_request: _Request | None = None


def _current_request() -> _Request | None:
    global _request
    parser = CmdlineParser.get_instance()
    if parser is None:
        return None
    if _request is None or _request.parser is not parser:  # read once per command line
        _request = _read_request(parser)
    return _request


def _read_request(parser: CmdlineParser) -> _Request:
    try:
        options = actions()
    except Exception as exc:  # Luigi raises plain errors for unparsable values, naming no option
        # Luigi's parser keeps a global option under "<section>_<name>"
        raw_values = [(name, getattr(parser.known_args, f"{actions.get_task_family()}_{name}", None))
                      for name in ACTIONS]
        bad = [(name, raw) for name, raw in raw_values if not _is_int(raw)]
        if bad:
            return _Request(parser, None, f"{_flag(bad[0][0])} {bad[0][1]!r}: the depth must be an integer "
                                          "(-1: all, 0: the task only, N: N levels of requirements)")
        return _Request(parser, None, f"the interactive actions' options are malformed: {exc}")
    workers = luigi.interface.core().workers
    if workers < 1:  # Luigi would schedule everything and run nothing, then exit 0
        return _Request(parser, None, f"--workers {workers}: at least 1 worker is needed")
    given = [(name, getattr(options, name)) for name in ACTIONS if getattr(options, name) is not None]
    flags = [_flag(name) for name, _ in given]
    if len(given) > 1:
        return _Request(parser, None, f"{' and '.join(flags)} given together: one interactive action per "
                                      "command (nothing was done)")
    if options.stale and (not given or given[0][0] not in ("print_status", "remove_output")):
        return _Request(parser, None, "--stale goes with --print-status DEPTH or --remove-output DEPTH "
                                      "(nothing was done)")
    if given and given[0][1] < -1:
        return _Request(parser, None, f"{flags[0]} {given[0][1]}: the depth must be -1 (all) or 0 or more")
    return _Request(parser, given[0] if given else None, None)


def _is_int(raw: str | None) -> bool:
    if raw is None:
        return True
    try:
        int(raw)
    except ValueError:
        return False
    return True


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def perform_if_root(task: luigi.Task) -> None:
    """Perform the requested action on ``task`` if it is the root task of the command line; then end it.

    Called for every task built outside the construction of another task. The root is
    the first such task of the root task's family while the action is pending: Luigi's
    ``CmdlineParser.get_task_obj()`` builds it before anything is scheduled, through
    ``luigi --module`` and ``pyl`` alike. Raises :class:`ActionDone`; returns otherwise.
    """
    request = _current_request()
    if request is None or request.performed or (request.action is None and request.error is None):
        return
    if task.get_task_family() != request.parser.known_args.root_task:
        return
    request.performed = True
    if request.error is not None:
        print(f"pylaw: error: {request.error}", file=sys.stderr)
        raise ActionDone(USAGE_ERROR)
    assert request.action is not None
    try:
        code = _perform(task, *request.action)
        sys.stdout.flush()
    except BrokenPipeError:  # ``pyl ... --print-status -1 | head``
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = OK
    except (PylawError, OSError) as exc:  # e.g. --branches beyond the map, an unreachable storage element
        print(f"pylaw: error: {_flag(request.action[0])} {request.action[1]}: {exc}", file=sys.stderr)
        code = USAGE_ERROR if isinstance(exc, (ValueError, LookupError)) else PARTLY_FAILED
    raise ActionDone(code)


def _perform(task: luigi.Task, name: str, depth: int) -> int:
    out, options = sys.stdout, actions()
    if name == "print_deps":
        print_deps(task, depth, out)
    elif name == "print_status":
        print_status(task, depth, out, stale=bool(options.stale))
    elif name == "print_output":
        print_output(task, depth, out)
    elif name == "remove_output":
        outcomes = remove_output(task, depth, out, confirm=(lambda question: True) if options.yes else _confirm,
                                 stale=bool(options.stale))
        if outcomes[FAILED]:
            print(f"pylaw: error: {outcomes[FAILED]} outputs could not be removed", file=sys.stderr)
            return PARTLY_FAILED
    else:
        outcomes = fetch_output(task, depth, str(options.fetch_dir), out, overwrite=bool(options.fetch_overwrite))
        if outcomes[fetch.REFUSED] or outcomes[FAILED]:
            refused = f"{outcomes[fetch.REFUSED]} refused (other content at the destination; " \
                      "--fetch-overwrite replaces it)" if outcomes[fetch.REFUSED] else ""
            failed = f"{outcomes[FAILED]} failed" if outcomes[FAILED] else ""
            print(f"pylaw: error: not every output was fetched: {', '.join(filter(None, (refused, failed)))}",
                  file=sys.stderr)
            return PARTLY_FAILED
    return OK


def _confirm(question: str) -> bool:
    """Ask on the terminal; no answer (standard input closed) is no."""
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        print(file=sys.stdout)
        return False
