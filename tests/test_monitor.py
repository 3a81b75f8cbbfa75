"""pylaw.monitor: branch counts from listings against per-branch complete(); the submission state read tolerantly."""

from __future__ import annotations

import json
import os
import random
import time

import luigi
import pytest

import pylaw
from pylaw import monitor
from pylaw.job.state import RecordStatus, SubmissionState
from pylaw.workflow.branchlock import BranchLocks, held_branches, lock_path
from pylaw.workflow.local import write_failure_log
from tests.workflow.slurm_tasks import Square


class OneFile(pylaw.Task, pylaw.LocalWorkflow):
    n = luigi.IntParameter(default=40)

    def create_branch_map(self):
        return list(range(self.n))

    def output(self):
        return self.local_target(f"out_{self.branch}.json")


class TwoFilesSpread(pylaw.Task, pylaw.LocalWorkflow):
    """Two outputs per branch in three directories: a branch is done only with both."""

    n = luigi.IntParameter(default=40)

    def create_branch_map(self):
        return {b * 3: b for b in range(self.n)}  # sparse branch numbers

    def output(self):
        sub = f"part{self.branch % 3}"
        return {"a": self.local_target(sub, f"a_{self.branch}.txt"), "b": self.local_target(f"b_{self.branch}.txt")}


class OwnComplete(pylaw.Task, pylaw.LocalWorkflow):
    """Overrides complete(): the workflow's per-branch path, which status must follow too."""

    n = luigi.IntParameter(default=30)

    def create_branch_map(self):
        return list(range(self.n))

    def output(self):
        return self.local_target(f"c_{self.branch}.txt")

    def complete(self):
        return self.output().exists() and os.path.getsize(self.output().path) > 0


def leaves(output):
    return list(output.values()) if isinstance(output, dict) else [output]


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("cls", [OneFile, TwoFilesSpread, OwnComplete])
def test_fast_counts_equal_per_branch_complete(cls, seed):
    rng = random.Random(seed)
    selection = rng.choice(["", "0-20", "3,9,12-29"]) if cls is not TwoFilesSpread else rng.choice(["", "30-"])
    workflow = cls(version="v1", branches=selection) if selection else cls(version="v1")
    for number in workflow.branch_numbers() if selection else workflow.get_branch_map():
        for target in leaves(workflow.as_branch(number).output()):
            if rng.random() < 0.5:
                os.makedirs(os.path.dirname(target.path), exist_ok=True)
                with open(target.path, "w") as f:
                    f.write("x" if rng.random() < 0.8 else "")  # empty: not complete for OwnComplete
    status = monitor.collect(workflow).tasks[workflow.task_id]
    plain = {n for n in workflow.branch_numbers() if workflow.as_branch(n).complete()}
    assert status.branches is not None
    assert status.branches.done == len(plain) == status.done
    assert set(workflow.branch_numbers()) - set(status.branches.missing) == plain
    assert status.branches.total == len(workflow.branch_numbers())
    b = status.branches
    assert b.done + b.running + b.failed + b.pending == b.total


def write_state(workflow, records: list[tuple[list[int], RecordStatus, str | None]], closed=False, extra=None):
    state = SubmissionState(workflow.remote_state_target(), "slurm")
    for branches, status, job_id in records:
        record = state.new_record(branches)
        record.status, record.job_id = status, job_id
    state.closed = closed
    os.makedirs(os.path.dirname(state.target.path), exist_ok=True)
    state.save()
    if extra is not None:  # a newer writer (pilot jobs, say): fields and states this reader does not know
        with open(state.target.path) as f:
            data = json.load(f)
        extra(data)
        with open(state.target.path, "w") as f:
            json.dump(data, f)


def test_submission_state_counts_and_a_tolerant_reader(tmp_path):
    workflow = Square(version="v1", n=12, workflow="slurm")
    for b in (0, 1, 2):
        workflow.as_branch(b).output().dump({"branch": b})

    def newer(data):
        data["pilots"] = {"p1": {"lease": 30}}
        data["jobs"]["4"] = {"key": "4", "status": "leased", "branches": [10], "lease_until": 123.0}
        data["jobs"]["0"]["queue_position"] = 7

    write_state(workflow, [([0, 1], RecordStatus.DONE, "11"), ([2, 3], RecordStatus.RUNNING, "12"),
                           ([4, 5], RecordStatus.PENDING, "13"), ([6, 7], RecordStatus.GIVEN_UP, "14")], extra=newer)
    status = monitor.collect(workflow).tasks[workflow.task_id]
    (submission,) = status.submissions
    assert submission.counts() == {"done": 1, "running": 1, "pending": 1, "given_up": 1, "leased": 1}
    b = status.branches
    # 3 done (0-2); 3 running (branch 2 of that job is done already); 6, 7 given up; the rest pending
    assert (b.done, b.running, b.failed, b.pending) == (3, 1, 2, 6)
    assert status.activity == "running"
    assert status.workflow_type == "slurm"


def test_the_submission_state_of_another_workflow_type_is_found(tmp_path):
    remote = Square(version="v1", n=4, workflow="slurm")
    write_state(remote, [([0, 1, 2, 3], RecordStatus.GIVEN_UP, "21")], closed=True)
    local = Square(version="v1", n=4)  # status asked without --workflow: the default (local) type
    status = monitor.collect(local).tasks[local.task_id]
    assert status.workflow_type == "local"
    assert [s.workflow_type for s in status.submissions] == ["slurm"]
    assert status.branches.failed == 4 and status.activity == "failed"


def test_an_unreadable_state_file_is_reported_not_raised():
    workflow = Square(version="v1", n=4, workflow="slurm")
    path = workflow.remote_state_target().path
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write('{"format": 1, "jobs": ')  # cut short
    (submission,) = monitor.collect(workflow).tasks[workflow.task_id].submissions
    assert "cannot be read" in submission.problem and submission.jobs == []


def test_local_runs_running_and_failed_branches():
    workflow = OneFile(version="v1", n=20)
    write_failure_log(workflow, {3: "Traceback ...\nRuntimeError: x\n", 4: "Traceback ...\n"})
    workflow.as_branch(4).output().dump({})  # made since the failure: done, not failed
    pid = os.fork()
    if pid == 0:  # another run of the workflow, holding branches 7 and 8 (and 9-11 as one merged lock)
        locks = BranchLocks(workflow)
        for branch in (7, 8, 9, 10, 11):
            locks.try_lock(branch)
        time.sleep(30)
        os._exit(0)
    try:
        path = lock_path(workflow)
        for _ in range(200):
            if os.path.exists(path) and len(held_branches(path)) == 5:
                break
            time.sleep(0.02)
        assert held_branches(path) == {b: pid for b in (7, 8, 9, 10, 11)}
        b = monitor.collect(workflow).tasks[workflow.task_id].branches
        assert (b.done, b.running, b.failed, b.pending) == (1, 5, 1, 13)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert monitor.collect(OneFile(version="v1", n=20)).tasks[workflow.task_id].branches.running == 0


def test_status_writes_nothing(isolated):
    workflow = OneFile(version="v1", n=5)
    monitor.collect(workflow)
    assert not isolated.exists()
