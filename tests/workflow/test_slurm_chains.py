"""End-to-end on a real Slurm: dynamic branch maps and chains of several workflows, one command each.

Every command is a real ``pyl`` subprocess on the "submitting machine"; job counts are
taken from Slurm's own job list, so a job that submitted jobs itself would show up.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest

from tests.services.slurm import SlurmCluster, slurm_cluster  # noqa: F401 - the fixture

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYL = os.path.join(os.path.dirname(sys.executable), "pyl")


@pytest.fixture
def run_env(tmp_path, slurm_cluster):  # noqa: F811
    env = dict(os.environ)
    env.update({"PYTHONPATH": ROOT, "PYLAW_STORE": str(tmp_path / "store"), "SLURM_CONF": slurm_cluster.conf,
                "PYLAW_INDEX": str(tmp_path / "index.json"), "LUIGI_CONFIG_PATH": str(tmp_path / "luigi.cfg")})
    (tmp_path / "luigi.cfg").write_text("[core]\nlog_level = WARNING\n")
    return env


def pyl(tmp_path, env, task: str, *args: str, poll: str = "--poll-interval") -> subprocess.CompletedProcess:
    argv = [PYL, task, "--module", "tests.workflow.slurm_tasks", "--version", "v1", poll, "1", *args]
    return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def outputs(tmp_path, family: str, prefix: str) -> dict[int, dict]:
    found = {}
    for path in glob.glob(str(tmp_path / "store" / family / "v1" / "*" / f"{prefix}_*.json")):
        with open(path) as f:
            found[int(os.path.basename(path)[len(prefix) + 1:-5])] = json.load(f)
    return found


def new_jobs(cluster: SlurmCluster, before: set[str]) -> list[tuple[str, str, str]]:
    """Every job Slurm lists that did not exist before: ``(id, name, state)``."""
    return [job for job in cluster.jobs() if job[0] not in before]


def families(jobs: list[tuple[str, str, str]]) -> dict[str, int]:
    """Jobs per task family, from the job names (``pylaw_<Family>_<hash>``)."""
    counts: dict[str, int] = {}
    for _, name, _ in jobs:
        family = name.split("_")[1] if name.startswith("pylaw_") else name
        counts[family] = counts.get(family, 0) + 1
    return counts


def test_dynamic_map_waits_then_one_command_runs_upstream_and_branches_on_slurm(
        tmp_path, run_env, slurm_cluster):  # noqa: F811
    status = pyl(tmp_path, run_env, "PerFile", "--n", "4", "--print-status", "-1")
    assert status.returncode == 0 and "Traceback" not in status.stdout + status.stderr, status.stderr
    assert status.stdout.splitlines()[0] == "> PerFile(n=4): waiting for FileList(n=4)", status.stdout

    before = {job[0] for job in slurm_cluster.jobs()}
    result = pyl(tmp_path, run_env, "PerFile", "--n", "4", "--workflow", "slurm")
    assert result.returncode == 0, result.stdout + result.stderr
    done = outputs(tmp_path, "PerFile", "per")
    assert {b: out["file"] for b, out in done.items()} == {i: f"file{i}.root" for i in range(4)}
    assert all(out["slurm_job"] for out in done.values())
    jobs = new_jobs(slurm_cluster, before)
    assert families(jobs) == {"PerFile": 4} and {state for _, _, state in jobs} == {"COMPLETED"}


def test_local_only_upstream_runs_locally_and_downstream_on_slurm(tmp_path, run_env, slurm_cluster):  # noqa: F811
    before = {job[0] for job in slurm_cluster.jobs()}
    result = pyl(tmp_path, run_env, "AfterLocal", "--n", "3", "--workflow", "slurm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cannot run on --workflow 'slurm'" not in result.stdout + result.stderr
    assert result.stderr.count("LocalOnlyStage does not support --workflow slurm (it supports: local): "
                               "it runs with local") == 1
    assert all(out["slurm_job"] == "" for out in outputs(tmp_path, "LocalOnlyStage", "local").values())
    after = outputs(tmp_path, "AfterLocal", "after")
    assert {b: out["value"] for b, out in after.items()} == {0: 20, 1: 22, 2: 24}
    assert all(out["slurm_job"] for out in after.values())
    assert families(new_jobs(slurm_cluster, before)) == {"AfterLocal": 3}


def test_root_that_is_no_workflow_sends_its_upstream_to_slurm(tmp_path, run_env, slurm_cluster):  # noqa: F811
    before = {job[0] for job in slurm_cluster.jobs()}
    # SumSquares has no --poll-interval: Luigi's task-scoped form reaches Square
    result = pyl(tmp_path, run_env, "SumSquares", "--n", "3", "--workflow", "slurm", poll="--Square-poll-interval")
    assert result.returncode == 0, result.stdout + result.stderr
    (total,) = glob.glob(str(tmp_path / "store" / "SumSquares" / "v1" / "*" / "sum.json"))
    with open(total) as f:
        assert json.load(f) == 0 + 1 + 4
    assert all(out["slurm_job"] for out in outputs(tmp_path, "Square", "square").values())
    assert families(new_jobs(slurm_cluster, before)) == {"Square": 3}


def test_two_slurm_stages_from_one_command(tmp_path, run_env, slurm_cluster):  # noqa: F811
    before = {job[0] for job in slurm_cluster.jobs()}
    result = pyl(tmp_path, run_env, "Stage2", "--n", "3", "--workflow", "slurm")
    assert result.returncode == 0, result.stdout + result.stderr
    stage2 = outputs(tmp_path, "Stage2", "stage2")
    assert {b: out["value"] for b, out in stage2.items()} == {0: 3, 1: 4, 2: 5}
    stage1 = outputs(tmp_path, "SlurmOnlyStage", "stage1")
    assert len(stage1) == 3 and all(out["slurm_job"] for out in [*stage1.values(), *stage2.values()])
    # exactly what the submitting process sent: 3 + 3 jobs, none submitted from inside a job
    jobs = new_jobs(slurm_cluster, before)
    assert families(jobs) == {"SlurmOnlyStage": 3, "Stage2": 3}
    assert {state for _, _, state in jobs} == {"COMPLETED"}


def test_a_pilot_job_runs_a_slurm_only_upstream_inside_itself(tmp_path, run_env, slurm_cluster):  # noqa: F811
    """Inside the job, SlurmOnlyStage (whose only type is slurm) must run locally, not submit."""
    before = {job[0] for job in slurm_cluster.jobs()}
    result = pyl(tmp_path, run_env, "Stage2", "--n", "3", "--workflow", "slurm", "--pilot", "--tasks-per-job", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert families(new_jobs(slurm_cluster, before)) == {"Stage2": 1}
    stage1 = outputs(tmp_path, "SlurmOnlyStage", "stage1")
    stage2 = outputs(tmp_path, "Stage2", "stage2")
    assert sorted(stage1) == sorted(stage2) == [0, 1, 2]
    # stage 1 was written inside the one Stage2 job
    assert len({out["slurm_job"] for out in [*stage1.values(), *stage2.values()]}) == 1
    assert next(iter(stage1.values()))["slurm_job"]
