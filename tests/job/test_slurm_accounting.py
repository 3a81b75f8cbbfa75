"""Jobs that squeue has forgotten, answered by sacct, on a real Slurm with slurmdbd."""

from __future__ import annotations

import subprocess
import time

from pylaw.job.base import JobContext, JobRequest, JobStatus
from pylaw.job.command import CommandRunner
from pylaw.job.slurm import SlurmJobFileFactory, SlurmJobManager
from tests.services.slurm import slurm_accounting_cluster  # noqa: F401 - the fixture


def test_jobs_forgotten_by_squeue_are_answered_by_sacct(slurm_accounting_cluster, tmp_path):  # noqa: F811
    cluster = slurm_accounting_cluster
    manager = SlurmJobManager(CommandRunner(timeout=60, env=cluster.env))
    assert manager.accounting()
    script = tmp_path / "exit.sh"
    script.write_text('exit $(( ${1#--branch=} ))\n')  # branch 0 succeeds, branch 1 exits 1
    context = JobContext(command=["bash", str(script)], job_dir=str(tmp_path), task_name="A",
                         transfer_logs=False)
    requests = [JobRequest("0", (0,)), JobRequest("1", (1,))]
    batches = SlurmJobFileFactory().render(requests, context, per_file=2)
    ids = [result.job_id for result in manager.submit(batches)]
    assert all(ids)
    array_id = ids[0].partition("_")[0]
    deadline = time.monotonic() + 180  # MinJobAge=2, but the controller purges in a periodic pass
    while True:
        listed = subprocess.run(["squeue", "--noheader", "--states=all", f"--jobs={array_id},999999"],
                                env={**cluster.env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
        if not listed.stdout.strip():
            break
        assert time.monotonic() < deadline, f"squeue still lists the jobs: {listed.stdout}"
        time.sleep(1)
    before = manager.runner.calls.get("sacct", 0)
    states = manager.query(ids)
    assert manager.runner.calls.get("sacct", 0) == before + 1  # one bulk call for both
    assert states[ids[0]].status is JobStatus.FINISHED
    assert states[ids[1]].status is JobStatus.FAILED and states[ids[1]].exit_code == 4  # wrapper: task failed
