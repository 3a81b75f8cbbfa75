"""SlurmJobManager and SlurmJobFileFactory against the real single-node Slurm."""

from __future__ import annotations

import time

import pytest

from pylaw.job.base import JobContext, JobRequest, JobStatus
from pylaw.job.command import CommandRunner
from pylaw.job.slurm import SlurmJobFileFactory, SlurmJobManager
from tests.services.slurm import slurm_cluster  # noqa: F401 - the fixture


@pytest.fixture
def manager(slurm_cluster):  # noqa: F811
    return SlurmJobManager(CommandRunner(timeout=60))


def submit(manager, tmp_path, command, count, per_file):
    context = JobContext(command=command, job_dir=str(tmp_path), task_name="M", transfer_logs=False)
    requests = [JobRequest(str(i), (i,)) for i in range(count)]
    batches = SlurmJobFileFactory().render(requests, context, per_file)
    return batches, manager.submit(batches)


def wait_until_ended(manager, ids, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = manager.query(ids)
        if not any(state.status.active for state in states.values()):
            return states
        time.sleep(0.3)
    raise AssertionError(f"jobs {ids} did not end within {timeout} s")


def test_array_submission_query_with_exit_codes(manager, tmp_path):
    # branch N exits N % 3: the wrapper reports 0 as success and anything else as task failure (4)
    script = tmp_path / "exit.sh"
    script.write_text('exit $(( ${1#--branch=} % 3 ))\n')
    runner_calls = manager.runner.total_calls
    batches, results = submit(manager, tmp_path, ["bash", str(script)], 4, per_file=10)
    assert len(batches) == 1 and manager.runner.total_calls == runner_calls + 1  # one sbatch for 4 jobs
    ids = [r.job_id for r in results]
    assert all(ids) and len({i.partition("_")[0] for i in ids}) == 1
    states = wait_until_ended(manager, ids)
    assert [states[i].status for i in ids] == [JobStatus.FINISHED, JobStatus.FAILED, JobStatus.FAILED,
                                               JobStatus.FINISHED]
    assert [states[i].exit_code for i in ids] == [None, 4, 4, None]  # exit codes fetched for failures only


def test_find_by_name_and_cancel(manager, tmp_path):
    batches, results = submit(manager, tmp_path, ["sleep", "300"], 3, per_file=10)
    found = manager.find([batches[0].name, "pylaw_no_such_job"])
    assert found[batches[0].name] == {i: r.job_id for i, r in enumerate(results)}  # index in the batch -> id
    assert "pylaw_no_such_job" not in found
    manager.cancel([r.job_id for r in results])
    states = wait_until_ended(manager, [r.job_id for r in results])
    assert {state.status for state in states.values()} == {JobStatus.FAILED}
    assert {state.reason for state in states.values()} <= {"None", ""}


def test_unknown_ids_and_refused_submissions(manager, tmp_path):
    # a single unknown id makes squeue exit 1; the manager answers "unknown", it does not raise
    assert {k: v.status for k, v in manager.query(["999999"]).items()} == {"999999": JobStatus.UNKNOWN}
    context = JobContext(command=["true"], job_dir=str(tmp_path), task_name="M",
                         options={"partition": "no_such_partition"})
    batches = SlurmJobFileFactory().render([JobRequest("0", (0,))], context, per_file=1)
    (result,) = manager.submit(batches)
    assert result.job_id is None and "invalid partition" in result.error.lower()


def test_capabilities_come_from_the_cluster(manager):
    caps = manager.capabilities
    assert caps.arrays and caps.max_array_size == 10000  # MaxArraySize=10001 in the test config
    assert not manager.accounting()
    assert not SlurmJobManager(manager.runner, arrays=False).capabilities.arrays
