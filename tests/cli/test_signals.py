"""SIGINT, SIGTERM and SIGKILL reaching ``pyl`` mid-run: no branch worker survives, no output changes
after ``pyl`` exited, no partial output looks complete. Driven through the real ``pyl``."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.cli.project import alive, descendants_of, final_outputs, make_project, outputs, start, wait_for_runs

SETTLE = 1.0  # longer than a branch's write (0.3 s): a surviving writer would change the store


def assert_nothing_survives(project, workers):
    assert not [pid for pid in workers if alive(pid)], "a branch worker outlived pyl"
    before = outputs(project)
    time.sleep(SETTLE)
    assert outputs(project) == before, "outputs changed after pyl exited"
    for name, content in final_outputs(project).items():
        branch = name.rpartition("w_")[2].removesuffix(".txt")
        assert content == f"started\ncomplete {branch}\n", f"{name} looks complete but is partial"


def interrupt(tmp_path, sig, to_group, workers):
    project = make_project(tmp_path)
    process = start(project, "--n", "40", "--workers", str(workers))
    wait_for_runs(project, 2 * workers)  # branches are being written right now
    tree = descendants_of(process.pid)
    assert len(tree) >= (workers + 1 if workers > 1 else 0), tree
    if to_group:
        os.killpg(process.pid, sig)
    else:
        os.kill(process.pid, sig)
    code, err = process.wait(timeout=30)
    return project, code, tree, err


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_to_pyl_alone_stops_its_branch_workers(tmp_path, sig, code):
    project, returncode, tree, err = interrupt(tmp_path, sig, to_group=False, workers=2)
    assert returncode == code, err
    assert f"stopped by {signal.Signals(sig).name}" in err
    assert "Traceback" not in err, err
    assert_nothing_survives(project, tree)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_to_the_process_group(tmp_path, sig, code):
    project, returncode, tree, err = interrupt(tmp_path, sig, to_group=True, workers=2)
    assert returncode == code, err
    assert "Traceback" not in err, err
    assert_nothing_survives(project, tree)


def test_sigterm_with_one_worker_stops_in_the_branch(tmp_path):
    project, returncode, tree, err = interrupt(tmp_path, signal.SIGTERM, to_group=False, workers=1)
    assert returncode == 143, err
    assert_nothing_survives(project, tree)
    assert len(final_outputs(project)) < 40


def test_sigkill_mid_write_takes_the_workers_along(tmp_path):
    project = make_project(tmp_path)
    process = start(project, "--n", "40", "--workers", "2")
    wait_for_runs(project, 4)
    tree = descendants_of(process.pid)
    process.process.kill()
    process.wait(timeout=10)
    deadline = time.monotonic() + 2
    while any(alive(pid) for pid in tree) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert_nothing_survives(project, tree)
    partial = [name for name in outputs(project) if os.path.basename(name).startswith(".")]
    assert len(final_outputs(project)) < 40 and partial, "the kill came too late to hit a write"
