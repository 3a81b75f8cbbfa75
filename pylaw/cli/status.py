"""``pylaw status MODULE TASK [params] [--refresh] [--json] [--depth N]``: one screen about a task tree.

The dependency tree with each task's state, and per workflow its branches (done /
running / failed / pending, with a bar on a terminal) and its jobs' states as the
submission state records them (:mod:`pylaw.monitor`); ``--refresh`` asks the batch
system instead, once per workflow. On a terminal in colour, otherwise plain text;
``--json`` prints the document described in docs/monitoring.rst (schema
``pylaw-status/1``), for scripts: keys are only ever added within one schema version.
"""

from __future__ import annotations

import datetime
import difflib
import json
from collections.abc import Sequence
from typing import IO, Any

import luigi
from luigi.cmdline_parser import CmdlineParser
from luigi.task_register import Register, TaskClassNotFoundException

from pylaw import monitor, terminal
from pylaw.cli import preflight
from pylaw.cli.index import import_task_module
from pylaw.errors import TaskNotFoundError, UsageError
from pylaw.interactive import describe_keys, describe_task

SCHEMA = "pylaw-status/1"
BAR_CELLS = 24


def build_root(module: str, name: str, params: Sequence[str], command: str) -> luigi.Task:
    """The task ``name`` of ``module`` built from command-line ``params``, checked as ``pyl`` checks them."""
    import_task_module(module)
    try:
        cls = Register.get_task_cls(name)
    except TaskClassNotFoundException:
        cls = None
    if cls is None:
        known = sorted(family for family in Register.task_names()
                       if getattr(Register.get_task_cls(family), "__module__", "") == module)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise TaskNotFoundError(f"module {module!r} defines no task {name!r}; {hint}(it defines: "
                                f"{', '.join(known) or 'none'}); pylaw {command} MODULE TASK [--param value ...]")
    argv = [name, *params]
    try:
        preflight.check(argv)  # unknown or bad parameters: one line that names them
    except UsageError as exc:
        raise UsageError(f"{exc}{_own_option_hint(params, command)}") from None
    try:
        with CmdlineParser.global_instance(argv) as parser:
            return parser.get_task_obj()
    except luigi.parameter.ParameterException as exc:
        raise UsageError(f"cannot build {name}: {exc}") from None


#: the options of ``pylaw status`` / ``pylaw graph`` themselves (see pylaw.cli.main)
OWN_OPTIONS = {"status": ("--json", "--refresh", "--depth"), "graph": ("--output", "--refresh", "--depth")}


def _own_option_hint(params: Sequence[str], command: str) -> str:
    """A misspelled option of the command itself looks like an unknown task parameter: say which it may be."""
    own = OWN_OPTIONS.get(command, ())
    for token in params:
        close = difflib.get_close_matches(token.partition("=")[0], own, n=1) if token.startswith("--") else []
        if close and token not in own:
            return f" (or did you mean pylaw {command}'s own option {close[0]}?)"
    return ""


# -- plain text and colour -------------------------------------------------------------

def render_text(report: monitor.Report, colour: bool = False) -> str:
    """The tree, a line per task, and under each workflow its branches and jobs."""
    lines = [_headline(report, colour)]
    last = _last_children(report.tree)
    rails: dict[int, str] = {}  # per depth: what continues below a node there ("│   " or, after the last, "    ")
    for index, (depth, task_id, repeated) in enumerate(report.tree):
        lead = "".join(rails[d] for d in range(1, depth))
        connector = "" if depth == 0 else ("└── " if last[index] else "├── ")
        rails[depth] = "    " if last[index] else "│   "
        status = report.tasks[task_id]
        name = describe_task(status.task)
        if repeated:
            lines.append(f"{lead}{connector}{name}  {terminal.paint('(shown above)', 'missing', colour)}")
            continue
        lines.append(f"{lead}{connector}{name}  {_state_word(status, colour)}")
        has_children = index + 1 < len(report.tree) and report.tree[index + 1][0] > depth
        below = "".join(rails[d] for d in range(1, depth + 1)) + ("│   " if has_children else "    ")
        lines += [below + line for line in _details(status, colour)]
    return "\n".join(lines)


def _headline(report: monitor.Report, colour: bool) -> str:
    counts: dict[str, int] = {}
    for status in report.tasks.values():
        counts[status.activity] = counts.get(status.activity, 0) + 1
    parts = [terminal.paint(f"{n} {state}", state, colour) for state, n in sorted(counts.items())]
    source = "job states from the batch system, now" if report.refreshed else \
        "job states as recorded; the batch system was not asked"
    return f"{len(report.tasks)} task(s): {', '.join(parts)}  ({source})"


def _last_children(tree: list[tuple[int, str, bool]]) -> list[bool]:
    """Per tree entry: whether no later sibling follows it."""
    last = [True] * len(tree)
    open_at: dict[int, int] = {}
    for index, (depth, _, _) in enumerate(tree):
        for deeper in [d for d in open_at if d > depth]:
            del open_at[deeper]
        if depth in open_at:
            last[open_at[depth]] = False
        open_at[depth] = index
    return last


def _state_word(status: monitor.TaskStatus, colour: bool) -> str:
    word = status.state
    if status.state == "partial":
        word = f"partial {status.done}/{status.total}"
    elif status.state == "waiting":
        word = f"waiting for {len(status.waiting_for)} task(s)"
    if status.activity in ("running", "failed"):  # what the runs' records add to what the outputs say
        return terminal.paint(f"{word}, {status.activity}", status.activity, colour)
    return terminal.paint(word, status.state, colour)


def _details(status: monitor.TaskStatus, colour: bool) -> list[str]:
    if status.workflow_type is None:
        return []
    b = status.branches
    if b is None:
        return [f"workflow ({status.workflow_type}): branches unknown until the tasks its map is built from "
                "are complete"]
    counts = ", ".join(terminal.paint(f"{n} {word}", word, colour and n > 0) for word, n in
                       (("done", b.done), ("running", b.running), ("failed", b.failed), ("pending", b.pending)))
    bar = f"{terminal.bar(b.total, b.done, b.failed, b.running, BAR_CELLS, colour)}  " if colour else ""
    lines = [f"{b.total} branches ({status.workflow_type}): {bar}{counts}"]
    if b.missing and b.done:
        lines.append(f"missing branches: {describe_keys(b.missing)}")
    for submission in status.submissions:
        lines.append(_jobs_line(submission, colour))
    return lines


def _jobs_line(submission: monitor.Submission, colour: bool) -> str:
    if submission.problem:
        return f"{submission.workflow_type} jobs: submission state {submission.path} {submission.problem}"
    counts = submission.counts()
    parts = ", ".join(terminal.paint(f"{n} {state}", state, colour) for state, n in sorted(counts.items()))
    when = "batch system now" if submission.refreshed else f"recorded {_local_time(submission.updated)}"
    closed = ", submission closed" if submission.closed else ""
    return f"{len(submission.jobs)} {submission.workflow_type} jobs ({when}{closed}): {parts or 'none'}"


def _local_time(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")


# -- JSON ------------------------------------------------------------------------------

def to_json(report: monitor.Report) -> dict[str, Any]:
    """The ``pylaw-status/1`` document (docs/monitoring.rst)."""
    return {
        "schema": SCHEMA,
        "root": report.root,
        "refreshed": report.refreshed,
        "tasks": [_task_json(status) for status in report.tasks.values()],
        "tree": [{"depth": depth, "id": task_id, "repeated": repeated} for depth, task_id, repeated in report.tree],
    }


def _task_json(status: monitor.TaskStatus) -> dict[str, Any]:
    task = status.task
    data: dict[str, Any] = {
        "id": status.task_id, "family": task.get_task_family(),
        "params": task.to_str_params(only_significant=True), "state": status.state, "activity": status.activity,
        "outputs": {"done": status.done, "total": status.total}, "requires": status.requires, "workflow": None,
    }
    if status.workflow_type is not None:
        b = status.branches
        data["workflow"] = {
            "type": status.workflow_type,
            "branches": None if b is None else {"total": b.total, "done": b.done, "running": b.running,
                                                "failed": b.failed, "pending": b.pending},
            "missing": "" if b is None or not b.missing else describe_keys(b.missing),
            "waiting_for": status.waiting_for,
            "submissions": [_submission_json(s) for s in status.submissions],
        }
    return data


def _submission_json(submission: monitor.Submission) -> dict[str, Any]:
    updated = datetime.datetime.fromtimestamp(submission.updated, datetime.timezone.utc) if submission.updated \
        else None
    return {
        "type": submission.workflow_type, "path": submission.path,
        "updated": updated.isoformat(timespec="seconds") if updated else None,
        "closed": submission.closed, "refreshed": submission.refreshed, "problem": submission.problem,
        "jobs": submission.counts(),
        "job_list": [{"key": job.key, "job_id": job.job_id, "status": job.status, "live": job.live,
                      "attempt": job.attempt, "branches": job.branches} for job in submission.jobs],
    }


def show(task: luigi.Task, out: IO[str], depth: int = -1, refresh: bool = False, as_json: bool = False) -> int:
    """Print the status of ``task``'s tree to ``out``; the exit code (0)."""
    report = monitor.collect(task, depth, refresh)
    if as_json:
        json.dump(to_json(report), out, indent=1)
        out.write("\n")
    else:
        print(render_text(report, colour=terminal.isatty(out)), file=out)
    return 0
