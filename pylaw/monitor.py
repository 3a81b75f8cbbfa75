"""What a task tree's runs have made and are making: the data behind ``pylaw status`` and ``pylaw graph``.

Nothing runs and nothing is written here. Per task: whether its outputs exist (checked
in bulk: one listing per directory, as ``--print-status``). Per workflow, each selected
branch is *done* (its outputs exist), *running*, *failed* or *pending*; running and
failed come from what runs leave behind:

* remote workflows: the **submission state** (:mod:`pylaw.job.state`): which branches
  each job runs and in which state the submitting process saw it last. Read tolerantly:
  fields this reader does not know (a backend's, the pilot jobs') are ignored and job
  states it does not know are counted under their own name, so a newer writer never
  breaks ``pylaw status``. It is never written here: it belongs to the submitter;
* local workflows: the branch locks held right now on this machine (running) and the
  failure log of the last run (failed), see :mod:`pylaw.workflow.local`.

The batch system is asked only with ``refresh=True``: then once per workflow, in bulk,
through the workflow's own job manager, and what it answers replaces the recorded job
states in the counts (the state file stays as it is).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import luigi
from luigi.task import flatten

from pylaw.errors import PylawError
from pylaw.job.base import JobState, JobStatus
from pylaw.job.state import RecordStatus
from pylaw.target.collection import PendingCollection, existing_leaves, iter_leaves
from pylaw.workflow.branchlock import held_branches, lock_path

_RUNNING, _FAILED = RecordStatus.RUNNING.value, RecordStatus.GIVEN_UP.value
#: record states of jobs the batch system may know (asked about with refresh)
IN_BATCH_SYSTEM = tuple(status.value for status in RecordStatus if status.in_batch_system)
_FAILURE_HEADER = re.compile(r"^## branch (\d+)$", re.M)


@dataclass
class Job:
    """One job record as the submission state has it (and, after a refresh, as the batch system says)."""

    key: str
    status: str
    branches: list[int]
    job_id: str | None = None
    attempt: int = 1
    live: str | None = None  # the batch system's answer (pending, running, finished, failed, unknown)

    @property
    def current(self) -> str:
        return self.live if self.live is not None else self.status


@dataclass
class Submission:
    """The jobs of one remote workflow type, read from its submission state file."""

    workflow_type: str
    path: str
    updated: float  # the file's modification time (the submitter saves after every change)
    closed: bool
    jobs: list[Job]
    problem: str = ""  # why the file could not be read (then ``jobs`` is empty)
    refreshed: bool = False

    def counts(self) -> dict[str, int]:
        """Jobs per state: recorded states, or the batch system's after a refresh."""
        return dict(Counter(job.current for job in self.jobs))

    def branches_in(self, *states: str) -> set[int]:
        return {b for job in self.jobs if job.current in states for b in job.branches}


@dataclass
class Branches:
    """A workflow's selected branches by state; ``missing`` are those without outputs."""

    total: int
    done: int
    running: int
    failed: int
    pending: int
    missing: list[int] = field(default_factory=list)


@dataclass
class TaskStatus:
    """One task of the tree."""

    task: luigi.Task
    state: str  # complete, partial, missing, waiting, no outputs
    done: int  # existing output elements (a workflow's: done branches)
    total: int
    requires: list[str]
    workflow_type: str | None = None  # None: no workflow
    branches: Branches | None = None
    submissions: list[Submission] = field(default_factory=list)
    waiting_for: list[str] = field(default_factory=list)

    @property
    def task_id(self) -> str:
        return str(self.task.task_id)

    @property
    def activity(self) -> str:
        """The state shown as a colour: running or failed where the runs say so, else ``state``."""
        if self.branches is not None and self.state != "complete":
            if self.branches.running:
                return "running"
            if self.branches.failed:
                return "failed"
        return self.state.split()[0]


@dataclass
class Report:
    """The tree below a root task: every task once, and the order in which to draw it."""

    root: str
    tasks: dict[str, TaskStatus]
    tree: list[tuple[int, str, bool]]  # (depth, task id, shown before), depth first
    refreshed: bool = False


def collect(root: luigi.Task, depth: int = -1, refresh: bool = False) -> Report:
    """The status of ``root`` and its requirements down to ``depth`` (-1: all)."""
    tasks: dict[str, TaskStatus] = {}
    tree: list[tuple[int, str, bool]] = []

    def visit(task: luigi.Task, level: int) -> None:
        seen = task.task_id in tasks
        tree.append((level, task.task_id, seen))
        if seen:
            return
        requirements = flatten(task.requires())
        tasks[task.task_id] = task_status(task, [r.task_id for r in requirements], refresh)
        if depth < 0 or level < depth:
            for requirement in requirements:
                visit(requirement, level + 1)

    visit(root, 0)
    return Report(root.task_id, tasks, tree, refresh)


def task_status(task: luigi.Task, requires: list[str], refresh: bool = False) -> TaskStatus:
    is_workflow = getattr(task, "is_workflow", None)
    if is_workflow is not None and is_workflow():
        return workflow_status(task, requires, refresh)
    leaves = list(iter_leaves(task.output()))
    done = sum(existing_leaves(leaves))
    return TaskStatus(task, _state(done, len(leaves)), done, len(leaves), requires)


def _state(done: int, total: int) -> str:
    if total == 0:
        return "no outputs"
    return "complete" if done == total else "missing" if done == 0 else "partial"


def workflow_status(task: Any, requires: list[str], refresh: bool = False) -> TaskStatus:
    """A workflow's branches by state; done from its outputs (the fast check), the rest from its runs."""
    output = task.workflow_output()
    if isinstance(output, PendingCollection):
        waiting = [t.task_id for t in output.waiting_for]
        return TaskStatus(task, "waiting", 0, 0, requires, task.workflow, waiting_for=waiting)
    completeness = task.branch_completeness()
    missing = [n for n, ok in completeness.items() if not ok]
    submissions = []
    for wtype, owner in state_owners(task):
        submission = read_submission(owner, wtype)
        if submission is not None:
            if refresh:
                refresh_submission(owner, submission)
            submissions.append(submission)
    wanted = set(missing)
    running = local_running(task, wanted)
    failed = local_failed(task, wanted)
    for submission in submissions:
        if not submission.closed:
            running |= submission.branches_in(_RUNNING) & wanted
        failed |= submission.branches_in(_FAILED, JobStatus.FAILED.value) & wanted
    failed -= running
    total, done = len(completeness), len(completeness) - len(missing)
    branches = Branches(total, done, len(running), len(failed), len(wanted - running - failed), missing)
    return TaskStatus(task, _state(done, total), done, total, requires, task.workflow, branches, submissions)


# -- remote workflows: the submission state --------------------------------------------

def state_owners(task: Any) -> list[tuple[str, Any]]:
    """``(workflow type, instance of that type)`` for each remote type the workflow's class supports.

    The instance of the type the task runs with is the task itself (its ``--ce`` settings
    kept); for the other types a twin with only ``workflow`` changed says where their
    state file is (``remote_job_dir()`` may be overridden) and which job manager asks.
    """
    owners = []
    for wtype, mixin in task.workflow_types().items():
        if not hasattr(mixin, "remote_state_target"):
            continue  # local
        if task.workflow == wtype:
            owners.append((wtype, task))
            continue
        try:
            twin = type(task).from_param_values({**task.param_kwargs, "workflow": wtype, "ce": ""})
        except PylawError:
            continue
        owners.append((wtype, twin))
    return owners


def read_submission(owner: Any, workflow_type: str) -> Submission | None:
    """The jobs recorded in ``owner``'s submission state file, or None if it has none."""
    path = owner.remote_state_target().path
    try:
        with open(path) as f:
            data = json.load(f)
        updated = os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return Submission(workflow_type, path, 0.0, False, [], problem=f"cannot be read: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
        return Submission(workflow_type, path, updated, False, [], problem="no job records in it")
    jobs = [job for key, record in data["jobs"].items() if (job := _job(str(key), record)) is not None]
    return Submission(str(data.get("workflow_type") or workflow_type), path, updated, bool(data.get("closed")), jobs)


def _job(key: str, record: Any) -> Job | None:
    if not isinstance(record, dict):
        return None
    branches = [b for b in record.get("branches") or [] if isinstance(b, int)]
    job_id = record.get("job_id")
    attempt = record.get("attempt")
    return Job(key, str(record.get("status") or "unknown"), branches, str(job_id) if job_id else None,
               attempt if isinstance(attempt, int) else 1)


def refresh_submission(owner: Any, submission: Submission) -> None:
    """Ask the batch system, in one bulk query through the workflow's job manager, about the open jobs."""
    asked = [job for job in submission.jobs if job.status in IN_BATCH_SYSTEM and job.job_id]
    submission.refreshed = True
    if not asked:
        return
    states = owner.remote_job_manager().peek([job.job_id for job in asked])  # looks, never acts on a job
    for job in asked:
        job.live = states.get(job.job_id or "", JobState(JobStatus.UNKNOWN)).status.value


# -- local workflows: branch locks and the failure log ---------------------------------

def local_running(task: Any, wanted: set[int]) -> set[int]:
    """Branches whose lock another process on this machine holds now (they are being run)."""
    path = lock_path(task)
    if not wanted or not os.path.exists(path):
        return set()
    return set(held_branches(path)) & wanted


def local_failed(task: Any, wanted: set[int]) -> set[int]:
    """Branches the last local run of this workflow logged as failed (and that have no outputs since)."""
    from pylaw.workflow.local import failure_log

    try:
        with open(failure_log(task)) as f:
            text = f.read()
    except OSError:
        return set()
    return {int(n) for n in _FAILURE_HEADER.findall(text)} & wanted

