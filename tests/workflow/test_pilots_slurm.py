"""Pilot jobs (``--pilots N``) end to end on the real single-node Slurm of the test suite.

The submitter is a real ``python -m luigi`` process; the pilots are real Slurm jobs (one
array), the queue is in the job directory. Checked from the outputs, the queue's ledger
and Slurm's own job list.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

from tests.services.slurm import slurm_cluster  # noqa: F401 - the fixture
from tests.workflow.pilot_checks import busy_pilot, check_exactly_once, outputs, queue_of, spread, static_spread

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "luigi", "--module", "tests.workflow.pilot_tasks", "Uneven", "--version", "v1",
            "--workflow", "slurm", "--local-scheduler", "--poll-interval", "1", "--retcode-task-failed", "40", *args]


def environment(tmp_path, cluster) -> dict[str, str]:
    (tmp_path / "luigi.cfg").write_text("[core]\nlog_level = WARNING\n")
    return {**os.environ, "PYTHONPATH": ROOT, "PYLAW_STORE": str(tmp_path / "store"), "SLURM_CONF": cluster.conf,
            "LUIGI_CONFIG_PATH": str(tmp_path / "luigi.cfg")}


def job_dir(tmp_path) -> str:
    (found,) = glob.glob(str(tmp_path / "store" / "Uneven" / "v1" / "*" / "_pylaw_slurm_jobs"))
    return found


def pilot_jobs(cluster, before: set[str]) -> dict[str, str]:
    return {job_id: state for job_id, name, state in cluster.jobs()
            if job_id not in before and name.startswith("pylaw_Uneven_")}


def test_two_hundred_branches_with_four_pilots(tmp_path, slurm_cluster):  # noqa: F811
    before = {job[0] for job in slurm_cluster.jobs()}
    result = subprocess.run(command("--n", "200", "--pilots", "4", "--pilot-lease", "5s"),
                            env=environment(tmp_path, slurm_cluster), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "slurm pilots: 200 branches: 200 done" in result.stdout
    done = outputs(str(tmp_path / "store"))
    assert sorted(done) == list(range(200))
    jobs = pilot_jobs(slurm_cluster, before)
    assert len(jobs) == 4 and set(jobs.values()) == {"COMPLETED"}, jobs
    assert len({job_id.partition("_")[0] for job_id in jobs}) == 1, "the four pilots were ONE submission"
    queue = queue_of(job_dir(tmp_path))
    pilots = queue.pilots()
    assert len(pilots) == 4 and len({r["slurm_job"] for r in pilots.values()}) == 4
    assert {out["slurm_job"] for out in done.values()} <= {r["slurm_job"] for r in pilots.values()}
    assert {out["pid"] for out in done.values()} <= {r["pid"] for r in pilots.values()}
    assert len({out["pid"] for out in done.values()}) >= 2, "branches ran in several pilot processes"
    ledger = check_exactly_once(queue, 200)
    assert ledger["claims"] == {b: [1] for b in range(200)}, "nothing expired: one lease per branch"
    assert not glob.glob(str(tmp_path / "store" / ".pylaw-staging" / "*" / "*")), "no staged result left"


def test_a_pilot_killed_mid_way_loses_and_duplicates_nothing(tmp_path, slurm_cluster):  # noqa: F811
    before = {job[0] for job in slurm_cluster.jobs()}
    submitter = subprocess.Popen(command("--n", "60", "--sleep", "0.2", "--pilots", "3", "--pilot-lease", "3s",
                                         "--pilot-chunk", "2"),
                                 env=environment(tmp_path, slurm_cluster), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    try:
        deadline, victim = time.monotonic() + 60, None
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.3)
            dirs = glob.glob(str(tmp_path / "store" / "Uneven" / "v1" / "*" / "_pylaw_slurm_jobs"))
            if dirs and os.path.exists(os.path.join(dirs[0], "submission.json")):
                victim = busy_pilot(queue_of(dirs[0]))
        assert victim is not None, "no pilot got going"
        os.kill(victim["pid"], signal.SIGKILL)
        out, _ = submitter.communicate(timeout=120)
    finally:
        submitter.kill()
    assert submitter.returncode == 0, out
    done = outputs(str(tmp_path / "store"))
    assert sorted(done) == list(range(60)), "no branch lost"
    queue = queue_of(job_dir(tmp_path))
    ledger = check_exactly_once(queue, 60)
    killed = queue.pilots()[victim["id"]]
    assert killed["ended"] is None, "the killed pilot never recorded an end"
    retaken = [b for b, epochs in ledger["claims"].items() if len(epochs) > 1]
    assert retaken, "the killed pilot's leases expired and were claimed again"
    assert all(ledger["done"][b]["pilot"] != victim["id"] for b in retaken)
    assert all(done[b]["pilot"] == ledger["done"][b]["pilot"] for b in done), "each output is its winner's"
    states = pilot_jobs(slurm_cluster, before)
    with open(os.path.join(job_dir(tmp_path), "submission.json")) as f:
        record = json.load(f)["jobs"][victim["id"].partition(".")[0]]
    victim_job = record["job_id"] or record["history"][-1]["job_id"]
    assert record["status"] == "given_up", "the submitter saw the pilot fail"
    assert states[victim_job] == "FAILED", f"Slurm saw the pilot die: {states}"


def test_unequal_branches_end_with_the_pilots_finishing_together(tmp_path, slurm_cluster):  # noqa: F811
    """Four 2 s branches first, forty 0.25 s ones: static binding gives one job all the slow ones."""
    started = time.time()
    result = subprocess.run(command("--n", "44", "--sleep", "0.25", "--slow", "0,1,2,3", "--slow-sleep", "2",
                                    "--pilots", "4", "--pilot-chunk", "1", "--pilot-lease", "10s"),
                            env=environment(tmp_path, slurm_cluster), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    done = outputs(str(tmp_path / "store"))
    assert sorted(done) == list(range(44))
    pilots = queue_of(job_dir(tmp_path)).pilots()
    assert len(pilots) == 4 and all(r["completed"] for r in pilots.values())
    first_start = min(r["started"] for r in pilots.values())
    assert first_start > started
    late = spread([r["work_end"] for r in pilots.values()], first_start)
    static = static_spread({b: out["end"] - out["start"] for b, out in done.items()}, 4)
    tolerance = 0.35
    assert static > tolerance, f"static binding would end {static:.0%} apart: the check would fail for it"
    assert late < tolerance, f"the pilots ended {late:.0%} of the run apart (static binding: {static:.0%})"


def test_kill_9_of_the_submitter_then_rerun_reattaches_to_the_running_pilots(tmp_path, slurm_cluster):  # noqa: F811
    before, env = {job[0] for job in slurm_cluster.jobs()}, environment(tmp_path, slurm_cluster)
    args = ("--n", "60", "--sleep", "0.2", "--pilots", "3", "--pilot-lease", "5s")
    submitter = subprocess.Popen(command(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len([s for s in pilot_jobs(slurm_cluster, before).values()
                                                   if s == "RUNNING"]) < 3:
            time.sleep(0.2)
    finally:
        submitter.send_signal(signal.SIGKILL)
        submitter.wait(10)
    running = pilot_jobs(slurm_cluster, before)
    assert len(running) == 3, running
    result = subprocess.run(command(*args), env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(outputs(str(tmp_path / "store"))) == list(range(60))
    assert set(pilot_jobs(slurm_cluster, before)) == set(running), "the rerun submitted no pilot: it reattached"
    check_exactly_once(queue_of(job_dir(tmp_path)), 60)
