"""End-to-end: workflows whose branches run as jobs on a real single-node Slurm.

The submitting process is a real ``python -m luigi`` subprocess, so it can be killed with
SIGKILL; jobs are real Slurm jobs running :mod:`tests.workflow.slurm_tasks` on this
machine. Duplicate submissions are checked against Slurm's own job list.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.services.slurm import SlurmCluster, slurm_cluster  # noqa: F401 - the fixture

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASK_FAILED = 40


@pytest.fixture
def run_env(tmp_path, slurm_cluster):  # noqa: F811
    env = dict(os.environ)
    env.update({"PYTHONPATH": ROOT, "PYLAW_STORE": str(tmp_path / "store"), "SLURM_CONF": slurm_cluster.conf,
                "LUIGI_CONFIG_PATH": str(tmp_path / "luigi.cfg")})
    (tmp_path / "luigi.cfg").write_text("[core]\nlog_level = WARNING\n")
    (tmp_path / "markers").mkdir()
    return env


def command(tmp_path, *args: str) -> list[str]:
    return [sys.executable, "-m", "luigi", "--module", "tests.workflow.slurm_tasks", "Square",
            "--version", "v1", "--workflow", "slurm", "--local-scheduler", "--poll-interval", "1",
            "--retcode-task-failed", str(TASK_FAILED), "--marker-dir", str(tmp_path / "markers"), *args]


def run(tmp_path, env, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command(tmp_path, *args), env=env, capture_output=True, text=True, timeout=timeout)


def job_dir(tmp_path) -> str:
    (found,) = glob.glob(str(tmp_path / "store" / "Square" / "v1" / "*" / "_pylaw_slurm_jobs"))
    return found


def outputs(tmp_path) -> dict[int, dict]:
    files = glob.glob(str(tmp_path / "store" / "Square" / "v1" / "*" / "square_*.json"))
    return {int(os.path.basename(f)[7:-5]): read_json(f) for f in files}


def read_text(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()


def read_json(path: str) -> dict:
    return json.loads(read_text(path))


def our_jobs(cluster: SlurmCluster, before: set[str]) -> list[tuple[str, str, str]]:
    """Jobs Slurm lists that did not exist before the test: ``(id, name, state)``."""
    return [job for job in cluster.jobs() if job[0] not in before and job[1].startswith("pylaw_Square_")]


def test_fifty_branches_three_per_job_complete(tmp_path, run_env, slurm_cluster):  # noqa: F811
    before = {job[0] for job in slurm_cluster.jobs()}
    result = run(tmp_path, run_env, "--n", "50", "--tasks-per-job", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    done = outputs(tmp_path)
    assert sorted(done) == list(range(50))
    assert all(done[b]["square"] == b * b and done[b]["slurm_job"] for b in done)
    jobs = our_jobs(slurm_cluster, before)
    assert len(jobs) == 17  # ceil(50 / 3) jobs, no more
    assert {state for _, _, state in jobs} == {"COMPLETED"}
    assert len({name for _, name, _ in jobs}) == 1, "all 17 jobs were submitted as ONE array"
    # three branches per job: the outputs name 17 distinct Slurm jobs
    assert len({done[b]["slurm_job"] for b in done}) == 17
    assert "slurm: 50 branches: 50 done, 0 failed" in result.stdout
    state = read_json(os.path.join(job_dir(tmp_path), "submission.json"))
    assert state["closed"] and len(state["jobs"]) == 17


def test_existing_outputs_are_never_submitted(tmp_path, run_env, slurm_cluster):  # noqa: F811
    first = run(tmp_path, run_env, "--n", "6", "--branches", "0-3")
    assert first.returncode == 0, first.stdout + first.stderr
    before = {job[0] for job in slurm_cluster.jobs()}
    second = run(tmp_path, run_env, "--n", "6", "--tasks-per-job", "1")
    assert second.returncode == 0, second.stdout + second.stderr
    assert sorted(outputs(tmp_path)) == list(range(6))
    assert len(our_jobs(slurm_cluster, before)) == 2  # branches 4 and 5 only


def test_job_failing_first_attempt_is_resubmitted(tmp_path, run_env, slurm_cluster):  # noqa: F811
    before = {job[0] for job in slurm_cluster.jobs()}
    result = run(tmp_path, run_env, "--n", "6", "--tasks-per-job", "2", "--flaky", "3", "--retries", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(outputs(tmp_path)) == list(range(6))
    states = sorted(state for _, _, state in our_jobs(slurm_cluster, before))
    assert states == ["COMPLETED"] * 3 + ["FAILED"]  # 3 jobs + 1 resubmission
    state = read_json(os.path.join(job_dir(tmp_path), "submission.json"))
    (retried,) = [r for r in state["jobs"].values() if r["attempt"] == 2]
    assert retried["branches"] == [3]  # only the missing branch went into the retry
    assert retried["history"][0]["exit_code"] == 4  # the wrapper's "task failed" code


def test_branch_always_failing_is_given_up_and_tolerance_decides(tmp_path, run_env, slurm_cluster):  # noqa: F811
    tolerated = run(tmp_path, run_env, "--n", "5", "--broken", "2", "--retries", "0", "--tolerance", "1")
    assert tolerated.returncode == 0, tolerated.stdout + tolerated.stderr
    assert "5 branches: 4 done, 1 failed" in tolerated.stdout
    assert sorted(outputs(tmp_path)) == [0, 1, 3, 4]

    # without tolerance the workflow is incomplete: only branch 2 is submitted, twice, then given up
    before = {job[0] for job in slurm_cluster.jobs()}
    failed = run(tmp_path, run_env, "--n", "5", "--broken", "2", "--retries", "1")
    assert failed.returncode == TASK_FAILED, failed.stdout + failed.stderr
    assert "1 of 5 branches of Square failed for good (2) after 2 attempts" in failed.stdout + failed.stderr
    assert [state for _, _, state in our_jobs(slurm_cluster, before)] == ["FAILED", "FAILED"]
    log = glob.glob(os.path.join(job_dir(tmp_path), "logs", "job*_attempt2_branch2.log"))
    assert log and "broken on purpose" in read_text(log[0])


def test_kill_9_then_rerun_reattaches_without_duplicates(tmp_path, run_env, slurm_cluster):  # noqa: F811
    before = {job[0] for job in slurm_cluster.jobs()}
    args = ("--n", "50", "--tasks-per-job", "3", "--parallel-jobs", "4", "--sleep", "1")
    proc = subprocess.Popen(command(tmp_path, *args), env=run_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    state_file = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until some, not all, jobs were submitted
        files = glob.glob(str(tmp_path / "store" / "Square" / "v1" / "*" / "_pylaw_slurm_jobs" / "*.json"))
        if files:
            state_file = files[0]
            records = read_json(state_file)["jobs"].values()
            if sum(1 for r in records if r["job_id"]) >= 4:
                break
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert state_file, "the submitter never wrote its state"
    submitted_before_kill = len(our_jobs(slurm_cluster, before))
    assert 0 < submitted_before_kill < 17, "the kill should happen mid-way"

    result = run(tmp_path, run_env, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(outputs(tmp_path)) == list(range(50))
    jobs = our_jobs(slurm_cluster, before)
    assert len(jobs) == 17, f"duplicate submissions: {len(jobs)} jobs for 17 chunks"
    assert {state for _, _, state in jobs} == {"COMPLETED"}
    # every branch ran exactly once: one output written by one Slurm job each
    state = read_json(state_file)
    branches = [b for r in state["jobs"].values() for b in r["branches"]]
    assert sorted(branches) == list(range(50))


def test_cancel_jobs_leaves_nothing_in_the_queue(tmp_path, run_env, slurm_cluster):  # noqa: F811
    before = {job[0] for job in slurm_cluster.jobs()}
    args = ("--n", "12", "--sleep", "300")
    submitted = run(tmp_path, run_env, *args, "--no-poll")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert len(our_jobs(slurm_cluster, before)) == 12
    cancelled = run(tmp_path, run_env, *args, "--cancel-jobs")
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    queue = subprocess.run(["squeue", "--noheader", "--array", "--format=%i|%j|%T"], env=run_env,
                           capture_output=True, text=True, check=True).stdout
    assert "pylaw_Square_" not in queue
    assert {state for _, _, state in our_jobs(slurm_cluster, before)} == {"CANCELLED"}
    assert outputs(tmp_path) == {}
    directory = job_dir(tmp_path)
    cleaned = run(tmp_path, run_env, *args, "--cleanup-jobs")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert not os.path.exists(directory)


def test_values_reach_the_task_verbatim_and_no_secret_is_written(tmp_path, run_env, slurm_cluster):  # noqa: F811
    nasty = "a b 'c' \"d\" $(touch PWNED) `touch PWNED2` ; \\ $HOME\nnext line * ?"
    env = {**run_env, "PYLAW_TEST_API_TOKEN": "s3cr3t-value"}
    result = subprocess.run(command(tmp_path, "--n", "2", "--text", nasty), env=env, capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {b: out["text"] for b, out in outputs(tmp_path).items()} == {0: nasty, 1: nasty}
    assert not glob.glob(str(tmp_path / "**" / "PWNED*"), recursive=True)
    for path in glob.glob(os.path.join(job_dir(tmp_path), "**", "*"), recursive=True):
        if os.path.isfile(path):
            assert "s3cr3t-value" not in read_text(path), path


def test_without_arrays_every_job_is_one_sbatch(tmp_path, run_env, slurm_cluster):  # noqa: F811
    (tmp_path / "luigi.cfg").write_text("[core]\nlog_level = WARNING\n[slurm]\narrays = false\n")
    before = {job[0] for job in slurm_cluster.jobs()}
    result = run(tmp_path, run_env, "--n", "4", "--tasks-per-job", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(outputs(tmp_path)) == list(range(4))
    jobs = our_jobs(slurm_cluster, before)
    assert len(jobs) == 2 and len({name for _, name, _ in jobs}) == 2
    assert all("_" not in job_id for job_id, _, _ in jobs)  # plain job ids, no array elements


def test_pilot_jobs_run_the_missing_upstream_branches_themselves(tmp_path, run_env, slurm_cluster):  # noqa: F811
    before = {job[0] for job in slurm_cluster.jobs()}
    args = ["--n", "4", "--tasks-per-job", "2", "--pilot"]
    cmd = [arg if arg != "Square" else "Cube" for arg in command(tmp_path, *args)]
    cmd.remove("--marker-dir")
    cmd.remove(str(tmp_path / "markers"))
    result = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(outputs(tmp_path)) == list(range(4))  # Square's outputs, written inside Cube's jobs
    cubes = glob.glob(str(tmp_path / "store" / "Cube" / "v1" / "*" / "cube_*.json"))
    assert sorted(read_json(f)["cube"] for f in cubes) == [0, 1, 8, 27]
    names = {name for job_id, name, _ in slurm_cluster.jobs() if job_id not in before}
    assert len(names) == 1 and next(iter(names)).startswith("pylaw_Cube_")  # Square was never submitted
