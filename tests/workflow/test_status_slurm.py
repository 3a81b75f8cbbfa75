"""Monitoring a remote workflow on the real Slurm: ``pylaw status`` from the submission state, ``--refresh``
from Slurm itself, and the poll loop's progress bar on a terminal (plain lines in a pipe)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time

from tests.conftest import PYTHON
from tests.services.slurm import slurm_cluster  # noqa: F401 - the fixture
from tests.workflow.test_slurm_e2e import ROOT, command, run_env  # noqa: F401 - the fixture

PYLAW = os.path.join(os.path.dirname(PYTHON), "pylaw")
PYL = os.path.join(os.path.dirname(PYTHON), "pyl")
SQUEUE_STATES = {"PENDING": "pending", "CONFIGURING": "pending", "RUNNING": "running", "COMPLETING": "running"}


def status(tmp_path, env, *args: str) -> subprocess.CompletedProcess:
    argv = [PYLAW, "status", "tests.workflow.slurm_tasks", "Square", "--version", "v1", "--workflow", "slurm",
            "--n", "6", "--json", *args]
    return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def square(document: dict) -> dict:
    (found,) = [t for t in document["tasks"] if t["family"] == "Square"]
    return found


def slurm_states(cluster, ids: set[str]) -> dict[str, str]:
    return {job_id: SQUEUE_STATES.get(state, state.lower()) for job_id, _, state in cluster.jobs() if job_id in ids}


def test_status_reads_the_submission_state_and_refresh_asks_slurm(tmp_path, run_env, slurm_cluster):  # noqa: F811
    submitted = subprocess.run(command(tmp_path, "--n", "6", "--tasks-per-job", "2", "--sleep", "30", "--no-poll"),
                               env=run_env, capture_output=True, text=True, timeout=120)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    try:
        # no batch-system command can be found: the recorded states are all status needs
        blind = {**run_env, "PATH": str(tmp_path / "no-such-bin")}
        recorded = status(tmp_path, blind)
        assert recorded.returncode == 0, recorded.stderr
        workflow = square(json.loads(recorded.stdout))["workflow"]
        (submission,) = workflow["submissions"]
        assert submission["jobs"] == {"pending": 3} and not submission["refreshed"]
        assert workflow["branches"] == {"total": 6, "done": 0, "running": 0, "failed": 0, "pending": 6}
        ids = {job["job_id"] for job in submission["job_list"]}
        assert len(ids) == 3

        deadline = time.monotonic() + 60
        while "running" not in slurm_states(slurm_cluster, ids).values():
            assert time.monotonic() < deadline, f"no job started: {slurm_cluster.jobs()}"
            time.sleep(0.5)
        before = slurm_states(slurm_cluster, ids)
        refreshed = status(tmp_path, run_env, "--refresh")
        after = slurm_states(slurm_cluster, ids)
        assert refreshed.returncode == 0, refreshed.stderr
        workflow = square(json.loads(refreshed.stdout))["workflow"]
        (submission,) = workflow["submissions"]
        assert submission["refreshed"]
        live = {job["job_id"]: job["live"] for job in submission["job_list"]}
        assert all(live[i] in (before[i], after[i]) for i in ids), (live, before, after)
        running_jobs = [j for j in submission["job_list"] if j["live"] == "running"]
        assert workflow["branches"]["running"] == sum(len(j["branches"]) for j in running_jobs) > 0
        # the state file is the submitter's: a refresh does not write it
        assert square(json.loads(status(tmp_path, blind).stdout))["workflow"]["submissions"][0]["jobs"] == \
            {"pending": 3}

        unreachable = status(tmp_path, blind, "--refresh")
        assert unreachable.returncode == 1 and "squeue" in unreachable.stderr, unreachable.stderr
        assert "Traceback" not in unreachable.stderr
    finally:
        cancelled = subprocess.run(command(tmp_path, "--n", "6", "--tasks-per-job", "2", "--cancel-jobs"),
                                   env=run_env, capture_output=True, text=True, timeout=120)
        assert cancelled.returncode == 0, cancelled.stderr


def read_terminal(master: int, timeout: float = 180) -> str:
    screen, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = select.select([master], [], [], 5)[0]
        try:
            chunk = os.read(master, 65536) if ready else b""
        except OSError:  # the terminal closed: the command is gone
            break
        if ready and not chunk:
            break
        screen += chunk
    return screen.decode(errors="replace")


def pyl_square(tmp_path, version: str, *args: str) -> list[str]:
    return [PYL, "--module", "tests.workflow.slurm_tasks", "Square", "--version", version, "--workflow", "slurm",
            "--poll-interval", "1", "--marker-dir", str(tmp_path / "markers"), "--sleep", "2", *args]


def test_polling_draws_a_bar_on_a_terminal_and_plain_lines_in_a_pipe(tmp_path, run_env, slurm_cluster):  # noqa: F811
    env = {**run_env, "PYTHONPATH": ROOT}
    (tmp_path / "luigi.cfg").write_text("[core]\nlog_level = WARNING\n[pylaw]\nprogress_interval = 120\n")
    master, slave = pty.openpty()
    process = subprocess.Popen(pyl_square(tmp_path, "v1", "--n", "4"), env=env, cwd=tmp_path, stdout=slave,
                               stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    text = read_terminal(master)
    os.close(master)
    assert process.wait(60) == 0, text
    bar = r"(?:\x1b\[[\d;]*m|[█▓░])+"
    assert re.search(rf"Square\[\w+\] {bar} \d/4 done.* \| slurm jobs: ", text), text
    assert "slurm: 4 branches: 4 done" not in text, "the plain line is for logs, not the terminal"
    assert "branches of Square(n=4): 4 to run, 4 done by jobs" in text, text  # the run's summary

    piped = subprocess.run(pyl_square(tmp_path, "v2", "--n", "3"), env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=180)
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert "\x1b[" not in piped.stdout + piped.stderr
    lines = [line for line in piped.stdout.splitlines() if line.startswith("slurm: 3 branches")]
    assert lines and lines[-1].startswith("slurm: 3 branches: 3 done, 0 failed"), piped.stdout
    assert len(lines) == len(set(lines)), "a line per change, not one per poll"

