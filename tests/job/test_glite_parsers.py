"""The CREAM CLI parsers on real glite-ce-* output copied from documentation (tests/job/data/glite/README.md)."""

from __future__ import annotations

import os

import pytest

from pylaw.job import glite_output as out
from pylaw.job.base import JobStatus
from pylaw.job.glite import GliteJobManager, GliteSettings

DATA = os.path.join(os.path.dirname(__file__), "data", "glite")


def read(name: str) -> str:
    with open(os.path.join(DATA, name)) as f:
        return f.read()


@pytest.mark.parametrize(("name", "job_id"), [
    ("submit_kek.txt", "https://kek2-ce01.cc.kek.jp:8443/CREAM162280538"),
    ("submit_guide_idfile.txt", "https://cream-ce-01.pd.infn.it:8443/CREAM116jbs5b9"),
    ("submit_debug_desy.txt", "https://grid-cr0.desy.de:8443/CREAM347851832"),
])
def test_submitted_id(name: str, job_id: str) -> None:
    assert out.submitted_id(read(name)) == job_id


def test_a_refused_submission_has_no_id_and_is_transient() -> None:
    text = read("submit_refused_guide.txt")
    assert out.submitted_id(text) is None
    assert GliteJobManager.transient_regex.search(text)
    assert "cannot accept jobs" in out.global_fault(text)


def test_debug_lines_naming_urls_are_not_taken_for_the_job_id() -> None:
    # the -d answer names the CREAM2 service URL and the upload gsiftp URL before the id
    assert out.job_ids(read("submit_debug_desy.txt")) == ["https://grid-cr0.desy.de:8443/CREAM347851832"]


@pytest.mark.parametrize(("name", "job_id", "status", "code"), [
    ("status_kek_idle.txt", "https://kek2-ce01.cc.kek.jp:8443/CREAM162280538", "IDLE", None),
    ("status_kek_done.txt", "https://kek2-ce01.cc.kek.jp:8443/CREAM162280538", "DONE-OK", 0),
    ("status_desy_really_running.txt", "https://grid-cr0.desy.de:8443/CREAM347851832", "REALLY-RUNNING", None),
    ("status_desy_done.txt", "https://grid-cr0.desy.de:8443/CREAM347851832", "DONE-OK", 0),
    ("status_manpage_cancelled.txt", "https://cream-03.pd.infn.it:8443/CREAM530773588", "CANCELLED", None),
    ("status_guide_held_L0.txt", "https://cream-ce-01.pd.infn.it:8443/CREAM11a79tnb2", "HELD", None),
    ("status_guide_idfile.txt", "https://cream-ce-01.pd.infn.it:8443/CREAM116jbs5b9", "REALLY-RUNNING", None),
    ("status_guide_L1_done_failed.txt", "https://cream-02.pd.infn.it:8443/CREAM738582717", "DONE-FAILED", None),
    ("status_manpage_L1_really_running.txt", "https://cream-02.pd.infn.it:8443/CREAM955790315",
     "REALLY-RUNNING", None),
])
def test_status_blocks(name: str, job_id: str, status: str, code: int | None) -> None:
    (block,) = out.status_blocks(read(name)).values()
    assert (block.job_id, block.status, block.exit_code) == (job_id, status, code)


def test_level_1_reads_the_current_status_not_the_history() -> None:
    # the history lists REGISTERED first: the current state is "Current Status"
    (block,) = out.status_blocks(read("status_manpage_L1_really_running.txt")).values()
    assert block.status == "REALLY-RUNNING"
    assert "Status" not in block.fields


def test_a_failure_reason_over_several_lines_is_kept_whole() -> None:
    (block,) = out.status_blocks(read("status_guide_L1_done_failed.txt")).values()
    assert block.reason.startswith("lsf_reason=256; Cannot move ISB")
    assert block.reason.endswith("No such file or directory 500 End.")
    assert block.fields["ExitCode"] == "N/A" and block.exit_code is None


def test_states_map_to_pylaw_states() -> None:
    manager = GliteJobManager("/nonexistent", GliteSettings(endpoint="ce.example.org/cream-pbs-q"))
    states = {}
    for name in sorted(os.listdir(DATA)):
        if name.startswith("status_"):
            for block in out.status_blocks(read(name)).values():
                states[name] = manager.state_of(block)
    assert states["status_kek_idle.txt"].status is JobStatus.PENDING
    assert states["status_guide_held_L0.txt"].status is JobStatus.PENDING  # CREAM's HELD: suspended, resumes
    assert states["status_desy_really_running.txt"].status is JobStatus.RUNNING
    assert states["status_kek_done.txt"].status is JobStatus.FINISHED
    assert states["status_manpage_cancelled.txt"].status is JobStatus.FAILED
    assert states["status_manpage_cancelled.txt"].reason == "Job cancelled by Lease Manager! (try 1/3)!"
    failed = states["status_guide_L1_done_failed.txt"]
    assert failed.status is JobStatus.FAILED and "Cannot move ISB" in failed.reason


def test_done_ok_with_a_non_zero_exit_code_is_a_failure() -> None:
    text = read("status_kek_done.txt").replace("ExitCode      = [0]", "ExitCode      = [4]")
    (block,) = out.status_blocks(text).values()
    manager = GliteJobManager("/nonexistent", GliteSettings(endpoint="ce.example.org/cream-pbs-q"))
    state = manager.state_of(block)
    assert (state.status, state.exit_code, state.reason) == (JobStatus.FAILED, 4, "exit code 4")


def test_many_blocks_in_one_answer() -> None:
    names = ["status_kek_done.txt", "status_desy_really_running.txt", "status_manpage_cancelled.txt",
             "status_guide_L1_done_failed.txt", "status_guide_idfile.txt"]
    blocks = out.status_blocks("".join(read(name) for name in names))
    singles = {}
    for name in names:
        singles.update(out.status_blocks(read(name)))
    assert {i: (b.status, b.exit_code, b.reason) for i, b in blocks.items()} == \
        {i: (b.status, b.exit_code, b.reason) for i, b in singles.items()}


def test_per_job_faults_and_global_faults() -> None:
    text = read("output_fault_uoa.txt")
    assert out.job_faults(text) == {"https://ctb04.gridctb.uoa.gr:8443/CREAM412750152": "fromDate/toDate mismatch"}
    assert out.global_fault(text) == ""  # a job's fault, not the call's
    assert out.global_fault(read("cancel_manpage_prompt.txt")) == ""
    assert out.global_fault(read("purge_manpage_prompt.txt")) == ""


@pytest.mark.parametrize(("name", "delegation"), [("delegate_guide.txt", "mydelid"),
                                                  ("delegate_manpage.txt", "myproxyid1")])
def test_delegation_confirmed(name: str, delegation: str) -> None:
    assert out.delegation_id(read(name)) == delegation


@pytest.mark.parametrize("name", ["output_kek.txt", "output_desy.txt"])
def test_output_dirs_and_the_sandbox_name(name: str) -> None:
    ((job_id, directory),) = out.output_dirs(read(name)).items()
    assert directory == f"./{out.sandbox_name(job_id)}"  # the name pylaw looks for on a rerun


def test_id_files_round_trip() -> None:
    ids = [out.submitted_id(read("submit_kek.txt")), out.submitted_id(read("submit_guide_idfile.txt"))]
    text = out.id_file([i for i in ids if i])
    assert text.splitlines()[0] == out.ID_FILE_HEADER
    assert out.job_ids(text) == ids
