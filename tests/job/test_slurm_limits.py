"""A per-user submit limit of a real Slurm (slurmdbd enforces it): refusals that use up no attempt."""

from __future__ import annotations

import subprocess
import time

from pylaw.job.base import JobContext, Refusal
from pylaw.job.command import CommandRunner
from pylaw.job.poll import JobPoller, PollSettings
from pylaw.job.slurm import SlurmJobFileFactory, SlurmJobManager
from pylaw.job.state import SubmissionState
from pylaw.target.local import LocalFileTarget
from tests.services.slurm import slurm_accounting_cluster  # noqa: F401 - the fixture


def sacctmgr(cluster, *args: str) -> None:
    subprocess.run(["sacctmgr", "-i", *args], env=cluster.env, check=True, capture_output=True, timeout=60)


def test_submit_limit_refusals_are_transient_and_every_branch_runs_once(slurm_accounting_cluster,  # noqa: F811
                                                                        tmp_path):
    cluster = slurm_accounting_cluster
    manager = SlurmJobManager(CommandRunner(timeout=60, env=cluster.env), arrays=False)
    script = tmp_path / "touch.sh"
    script.write_text(f'b=${{1#--branch=}}; echo "$SLURM_JOB_ID" >> {tmp_path}/runs_$b; touch {tmp_path}/out_$b\n')
    context = JobContext(command=["bash", str(script)], job_dir=str(tmp_path / "jobs"), task_name="Limited",
                         transfer_logs=False)
    reports: list[str] = []
    poller = JobPoller(manager, SlurmJobFileFactory(), context,
                       SubmissionState.load(LocalFileTarget(str(tmp_path / "state.json")), "slurm"), range(3),
                       lambda: {b for b in range(3) if (tmp_path / f"out_{b}").exists()},
                       PollSettings(tasks_per_job=1, retries=0, poll_interval=1),
                       report=lambda line, percent: reports.append(line), sleep=time.sleep)
    sacctmgr(cluster, "modify", "user", "root", "set", "MaxSubmitJobs=1")
    try:
        first = poller.poll_once()
        assert first is None
        history = [h for r in poller.state.jobs.values() for h in r.history]
        assert [h["status"] for h in history] == [Refusal.TRANSIENT.value] * 2, history  # 1 of 3 accepted
        assert "job submit limit" in history[0]["error"]
        outcome = poller.run()
    finally:
        sacctmgr(cluster, "modify", "user", "root", "set", "MaxSubmitJobs=-1")
    assert outcome.succeeded and outcome.failed == [], reports
    runs = {b: (tmp_path / f"runs_{b}").read_text().split() for b in range(3)}
    assert all(len(ids) == 1 for ids in runs.values()), runs  # each branch ran once, in its own job
    assert len({ids[0] for ids in runs.values()}) == 3
