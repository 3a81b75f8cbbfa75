"""Interactive actions on a task tree instead of running it.

``--print-deps``, ``--print-status``, ``--print-output``, ``--remove-output`` and
``--fetch-output`` walk the requirement tree down to a depth (``-1``: all the way) and
report or act on each task's outputs. A workflow's output is shown as one collection
(``partial 12/20``), checked with one listing per directory, or as ``waiting for Task(...)``
while its branch map cannot be built yet.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import IO, Any

import luigi
from luigi.task import flatten

from pylaw.target.base import DirectoryTarget, FileSystemTarget
from pylaw.target.collection import PendingCollection, TargetCollection, iter_leaves


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


def output_status(output: Any) -> tuple[str, list[str]]:
    """``("complete" | "partial n/m" | "missing" | "waiting for ...", [path lines])`` for a task's output."""
    pending = [o for o in _top_level(output) if isinstance(o, PendingCollection)]
    if pending:  # a workflow whose branch map is built from upstream outputs that are missing
        waiting = ", ".join(describe_task(task) for p in pending for task in p.waiting_for)
        return f"waiting for {waiting}", ["branches unknown until then"]
    collections = [o for o in _top_level(output) if isinstance(o, TargetCollection)]
    leaves = [o for o in _top_level(output) if not isinstance(o, TargetCollection)]
    lines, done, total = [], 0, 0
    for collection in collections:
        n, m = collection.count(), len(collection)
        done, total = done + n, total + m
        lines.append(f"{n}/{m} in {_collection_location(collection)}")
    for leaf in leaves:
        exists = leaf.exists()
        done, total = done + exists, total + 1
        lines.append(f"{'✓' if exists else '✗'} {getattr(leaf, 'path', leaf)}")
    if total == 0:
        return "no outputs", lines
    state = "complete" if done == total else "missing" if done == 0 else f"partial {done}/{total}"
    return state, lines


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


def print_status(task: luigi.Task, depth: int, out: IO) -> None:
    for level, current, repeated in walk(task, depth):
        indent = "    " * level
        if repeated:
            print(f"{indent}> {describe_task(current)}  (shown above)", file=out)
            continue
        state, lines = output_status(current.output())
        print(f"{indent}> {describe_task(current)}: {state}", file=out)
        for line in lines:
            print(f"{indent}    {line}", file=out)


def print_output(task: luigi.Task, depth: int, out: IO) -> None:
    for _, current, repeated in walk(task, depth):
        if not repeated:
            for leaf in iter_leaves(current.output()):
                print(getattr(leaf, "path", leaf), file=out)


def remove_output(task: luigi.Task, depth: int, out: IO, confirm: Callable[[str], bool]) -> int:
    """Remove existing outputs down to ``depth`` after one confirmation; returns the count."""
    existing = [leaf for _, current, repeated in walk(task, depth) if not repeated
                for leaf in iter_leaves(current.output()) if isinstance(leaf, FileSystemTarget)]
    existing = [leaf for leaf in existing if leaf.exists()]
    if not existing:
        print("nothing to remove", file=out)
        return 0
    for leaf in existing:
        print(f"  {leaf.path}", file=out)
    if not confirm(f"remove these {len(existing)} outputs?"):
        print("nothing removed", file=out)
        return 0
    removed = sum(bool(leaf.remove()) for leaf in existing)
    print(f"removed {removed} outputs", file=out)
    return removed


def fetch_output(task: luigi.Task, depth: int, directory: str, out: IO) -> int:
    """Copy existing outputs down to ``depth`` into ``directory/<TaskFamily>/``; returns the count."""
    fetched = 0
    for _, current, repeated in walk(task, depth):
        if repeated:
            continue
        destination = os.path.join(directory, current.task_family)
        for leaf in iter_leaves(current.output()):
            if not (isinstance(leaf, FileSystemTarget) and hasattr(leaf, "copy_to") and leaf.exists()):
                continue
            os.makedirs(destination, exist_ok=True)
            name = leaf.basename
            copy_path = os.path.join(destination, name)
            leaf.copy_to(copy_path)
            kind = "directory" if isinstance(leaf, DirectoryTarget) else "file"
            print(f"fetched {kind} {leaf.path} -> {copy_path}", file=out)
            fetched += 1
    return fetched
