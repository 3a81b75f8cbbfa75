"""Slurm output parsers, on output captured from a real Slurm (see data/README.md)."""

from __future__ import annotations

import os

import pytest

from pylaw.job.base import JobStatus
from pylaw.job.slurm import SlurmJobManager, base_id, exit_code_of

DATA = os.path.join(os.path.dirname(__file__), "data")


def read(name: str) -> str:
    with open(os.path.join(DATA, name)) as f:
        return f.read()


def test_squeue_states_of_arrays_singles_held_and_cancelled_jobs():
    states = SlurmJobManager.parse_squeue(read("squeue_states.txt"))
    assert {job_id: state.status for job_id, state in states.items()} == {
        "1_0": JobStatus.FINISHED, "1_1": JobStatus.FAILED, "1_2": JobStatus.FINISHED,
        "1_3": JobStatus.FAILED,
        "2": JobStatus.FAILED, "3": JobStatus.FAILED, "7_0": JobStatus.PENDING, "7_1": JobStatus.PENDING,
        "7_2": JobStatus.PENDING, "8": JobStatus.RUNNING,
    }
    assert states["7_0"].reason == "JobHeldUser"
    assert states["1_1"].reason == "NonZeroExitCode"


def test_squeue_for_one_unknown_id_yields_nothing():
    text = read("squeue_unknown_job.txt")
    assert "Invalid job id" in text  # the manager tolerates exactly this error
    assert SlurmJobManager.parse_squeue(text) == {}


def test_scontrol_gives_exit_codes_per_array_element():
    states = SlurmJobManager.parse_scontrol(read("scontrol_show_job.txt"))
    assert states["1_1"].status is JobStatus.FAILED and states["1_1"].exit_code == 1
    assert states["1_0"].exit_code == 0
    assert states["3"].exit_code == 3
    assert states["2"].status is JobStatus.FAILED and states["2"].exit_code == 128 + 15  # cancelled: SIGTERM
    assert states["8"].status is JobStatus.RUNNING
    # a pending array is one record with a task range, not an element
    assert "7" in states and "7_0" not in states


def test_config_tells_whether_accounting_exists():
    config = SlurmJobManager.parse_config(read("scontrol_show_config_excerpt.txt"))
    assert config["AccountingStorageType"] == "accounting_storage/none"
    assert config["MaxArraySize"] == "10001"


@pytest.mark.parametrize(("text", "expected"), [
    ("1_0|COMPLETED|None\n", {"1_0": JobStatus.FINISHED}),
    ("5|CANCELLED+|None\n", {"5": JobStatus.FAILED}),
    ("6|SOMETHING_NEW|None\n", {"6": JobStatus.UNKNOWN}),
    ("garbage line\n", {}),
])
def test_squeue_lines(text, expected):
    assert {k: v.status for k, v in SlurmJobManager.parse_squeue(text).items()} == expected


def test_sacct_with_accounting_skips_job_steps_and_reads_cancelled_by():
    states = SlurmJobManager.parse_sacct(read("sacct_jobs.txt"))
    assert set(states) == {"1_0", "1_1", "1_2", "1_3", "2", "3"}  # no "1_0.batch" steps
    assert states["1_1"].status is JobStatus.FAILED and states["1_1"].exit_code == 3
    assert states["2"].status is JobStatus.FAILED and states["2"].reason == "CANCELLED by 0"
    assert states["3"].status is JobStatus.FINISHED and states["3"].exit_code == 0
    elements = SlurmJobManager.parse_sacct(read("sacct_array_element.txt"))
    assert set(elements) == {"1_1", "3"}


def test_sacct_without_accounting_prints_no_jobs():
    text = read("sacct_disabled.txt")
    assert "accounting storage is disabled" in text
    assert SlurmJobManager.parse_sacct(text) == {}


def test_helpers():
    assert base_id("12_3") == "12" and base_id("12") == "12"
    assert exit_code_of("0:9") == 137 and exit_code_of("4:0") == 4 and exit_code_of("") is None
    assert SlurmJobManager.submit_regex.match("123;cluster\n").group(1) == "123"


def test_cancelled_pending_array_is_one_record_for_all_elements():
    states = SlurmJobManager.parse_squeue(read("squeue_cancelled_pending_array.txt"))
    assert {k: v.status for k, v in states.items()} == {"1": JobStatus.FAILED}
    records = SlurmJobManager.parse_scontrol(read("scontrol_cancelled_pending_array.txt"))
    assert set(records) == {"1"}  # not "1_4294967294"


@pytest.mark.parametrize("stderr,transient", [
    # sbatch's messages (Slurm 22.05) for refusals that go away by themselves ...
    ("sbatch: error: Batch job submission failed: Resource temporarily unavailable", True),
    ("sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates "
     "accounting/QOS policy (job submit limit, user's size and/or time limits)", True),
    ("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation", True),
    ("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)", True),
    # ... and for those that do not
    ("sbatch: error: Batch job submission failed: Invalid partition name specified", False),
    ("sbatch: error: invalid partition specified: no_such_partition", False),
    ("sbatch: error: Batch job submission failed: Requested node configuration is not available", False),
])
def test_transient_sbatch_refusals_are_told_apart(stderr, transient):
    assert bool(SlurmJobManager.transient_regex.search(stderr)) is transient
