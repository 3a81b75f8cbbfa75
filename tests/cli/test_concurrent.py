"""Two runs of one workflow at once, through the real ``pyl``: every branch runs exactly once,
the outputs are complete, and a run whose work is held elsewhere says so (exit code 3)."""

from __future__ import annotations

import collections
import re

from tests.cli.project import final_outputs, make_project, runs, start, wait_for_runs
from tests.services.luigid import luigid  # noqa: F401 - fixture


def assert_each_branch_ran_once(project, n):
    counts = collections.Counter(branch for _, branch in runs(project))
    assert sorted(counts) == list(range(n)), counts
    assert set(counts.values()) == {1}, f"branches ran more than once: {counts}"
    outputs = {name.rpartition("w_")[2]: content for name, content in final_outputs(project).items()}
    assert outputs == {f"{b}.txt": f"started\ncomplete {b}\n" for b in range(n)}


def test_overlapping_branches_without_scheduler(tmp_path):
    project = make_project(tmp_path)
    first = start(project, "--n", "10", "--branches", "0-5", "--workers", "2", name="first")
    second = start(project, "--n", "10", "--branches", "3-9", "--workers", "2", name="second")
    (code1, err1), (code2, err2) = first.wait(), second.wait()
    assert (code1, code2) == (0, 0), err1 + err2
    assert_each_branch_ran_once(project, 10)
    assert re.search(r"\d+ made by another run \(pid \d+(, \d+)*\)", err1 + err2), "neither run said which branches " \
        "the other one made: " + err1 + err2


def test_the_same_command_twice_is_refused_with_code_3(tmp_path):
    project = make_project(tmp_path)
    first = start(project, "--n", "6", "--workers", "1", name="first")
    wait_for_runs(project, 1)
    second = start(project, "--n", "6", "--workers", "1", name="second")
    code2, err2 = second.wait()
    assert code2 == 3, err2
    assert "already running" in err2 and str(first.pid) in err2, err2
    code1, err1 = first.wait()
    assert code1 == 0, err1
    assert_each_branch_ran_once(project, 6)


def test_overlapping_branches_under_luigid(tmp_path, luigid):  # noqa: F811
    project = make_project(tmp_path)
    scheduler = luigid.cli_args()
    first = start(project, "--n", "10", "--branches", "0-6", "--workers", "2", *scheduler, name="first")
    second = start(project, "--n", "10", "--branches", "4-9", "--workers", "2", *scheduler, name="second")
    (code1, err1), (code2, err2) = first.wait(), second.wait()
    assert (code1, code2) == (0, 0), err1 + err2
    assert_each_branch_ran_once(project, 10)


def test_the_same_workflow_held_by_another_luigid_worker_exits_3(tmp_path, luigid):  # noqa: F811
    project = make_project(tmp_path)
    # --no-lock: no machine-local pid lock, as if the two ran on different machines
    args = ("--n", "6", "--workers", "1", "--no-lock", *luigid.cli_args())
    first = start(project, *args, name="first")
    wait_for_runs(project, 1)  # the first one holds the workflow in luigid now
    second = start(project, *args, name="second")
    code2, err2 = second.wait()
    assert code2 == 3, err2
    assert "run by another worker" in err2 and f"pid={first.pid}" in err2, err2
    code1, err1 = first.wait()
    assert code1 == 0, err1
    assert_each_branch_ran_once(project, 6)
