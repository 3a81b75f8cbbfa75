"""GliteJobManager and GliteJobFileFactory against the CREAM CLI TEST DOUBLE (tests/doubles/glite_ce).

Every fact is read from the double's own records (its jobs, delegations and call ledger),
as from a CE's job list. The double prints what the real CLI prints, with ids of its own.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from pylaw.errors import CommandError, CredentialLifetimeError, JobFileError
from pylaw.job import jdl
from pylaw.job.base import JobContext, JobRequest, JobStatus
from pylaw.job.glite import GliteJobFileFactory, GliteJobManager, GliteSettings, id_path
from tests.doubles.glite_ce.fixture import CreamDouble, make_proxy

SETTINGS = GliteSettings(endpoint="cream-double.invalid:8443/cream-fork-double")


def context(job_dir: str, code: int = 0, walltime: float = 0) -> JobContext:
    """Jobs whose branch command exits ``code`` (the wrapper appends --branch=N)."""
    return JobContext(command=["python3", "-c", f"import sys; print('branch', sys.argv[1]); sys.exit({code})"],
                      job_dir=job_dir, task_name="T", shared_filesystem=False, walltime=walltime)


def submit(manager: GliteJobManager, job_dir: str, n: int, code: int = 0, start: int = 0):
    requests = [JobRequest(str(start + i), (start + i,)) for i in range(n)]
    batches = GliteJobFileFactory(SETTINGS).render(requests, context(job_dir, code), per_file=1)
    return batches, manager.submit(batches)


def wait_ended(manager: GliteJobManager, ids: list[str], timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = manager.query(ids)
        if all(not s.status.active for s in states.values()):
            return states
        time.sleep(0.3)
    raise AssertionError(f"jobs still active: {states}")


def test_one_delegation_for_all_jobs_ids_unlike_cream_and_per_job_submission(cream_double: CreamDouble,
                                                                               tmp_path) -> None:
    manager = GliteJobManager(str(tmp_path), SETTINGS)
    _, results = submit(manager, str(tmp_path), 5)
    assert all(r.job_id for r in results), results
    assert all(re.fullmatch(r"https://cream-double\.invalid:8443/DOUBLE_[0-9a-f]{12}", r.job_id or "")
               for r in results)
    (delegation,) = cream_double.delegations()
    assert {job["delegation"] for job in cream_double.jobs()} == {delegation}
    assert {r.data["delegation"] for r in results} == {delegation} and results[0].data["job_url"] == results[0].job_id
    assert len(cream_double.calls("job-submit")) == 5 and len(cream_double.calls("delegate-proxy")) == 1
    states = wait_ended(manager, [r.job_id for r in results if r.job_id])
    assert {s.status for s in states.values()} == {JobStatus.FINISHED}
    assert {s.exit_code for s in states.values()} == {0}
    # the output sandboxes came back and the branch logs are in the job directory
    logs = sorted(os.listdir(tmp_path / "logs"))
    assert logs == [f"job{i}_attempt1_branch{i}.log" for i in range(5)]
    assert "branch --branch=3" in (tmp_path / "logs" / "job3_attempt1_branch3.log").read_text()


def test_a_failing_job_reports_its_exit_code(cream_double: CreamDouble, tmp_path) -> None:
    manager = GliteJobManager(str(tmp_path), SETTINGS)
    _, results = submit(manager, str(tmp_path), 1, code=1)
    (state,) = wait_ended(manager, [results[0].job_id or ""]).values()
    assert (state.status, state.exit_code) == (JobStatus.FAILED, 4)  # the wrapper's "a branch task failed"


def test_a_rerun_reuses_the_delegation_and_re_delegates_when_the_ce_forgot_it(cream_double: CreamDouble,
                                                                              tmp_path) -> None:
    first = GliteJobManager(str(tmp_path), SETTINGS)
    submit(first, str(tmp_path), 2)
    (delegation,) = cream_double.delegations()
    rerun = GliteJobManager(str(tmp_path), SETTINGS, delegation=delegation)
    submit(rerun, str(tmp_path), 2, start=2)
    assert len(cream_double.calls("delegate-proxy")) == 1
    cream_double.forget_delegations()  # expired or cleaned up on the CE
    _, again = submit(rerun, str(tmp_path), 3, start=4)
    assert all(r.job_id for r in again), again
    (new,) = cream_double.delegations()
    assert new != delegation and {r.data["delegation"] for r in again} == {new}
    assert len(cream_double.calls("delegate-proxy")) == 2  # once, however many threads saw the refusal
    refused = [c for c in cream_double.calls("job-submit") if delegation in c["argv"]]
    assert len(refused) == 4 + 3  # two jobs of each earlier run, then the three refusals


def test_a_submission_with_an_unknown_delegation_is_refused_by_the_double(cream_double: CreamDouble,
                                                                          tmp_path) -> None:
    batches = GliteJobFileFactory(SETTINGS).render([JobRequest("0", (0,))], context(str(tmp_path)), 1)
    manager = GliteJobManager(str(tmp_path), SETTINGS, delegation="never-delegated")
    (result,) = [manager.submit_once(batches[0], "0", "never-delegated")]
    assert result.job_id is None and "delegation id [never-delegated] not found" in result.error
    assert cream_double.jobs() == []


def test_an_expired_proxy_is_refused_before_anything_reaches_the_ce(cream_double: CreamDouble, tmp_path,
                                                                    monkeypatch) -> None:
    expired = str(tmp_path / "x509up_expired")
    make_proxy(expired, start="20200101000000Z", end="20200102000000Z")
    monkeypatch.setenv("X509_USER_PROXY", expired)
    manager = GliteJobManager(str(tmp_path), SETTINGS)
    with pytest.raises(CredentialLifetimeError, match=r"expired .* ago .*nothing was submitted"):
        submit(manager, str(tmp_path), 2)
    assert cream_double.calls() == []  # pylaw's own check came first
    # the double refuses it like a CE would, if asked
    with pytest.raises(CommandError, match=r"could not delegate.*has expired.*voms-proxy-init"):
        manager.delegate()
    assert cream_double.jobs() == [] and cream_double.delegations() == {}


def test_a_proxy_shorter_than_the_walltime_plus_margin_is_refused(cream_double: CreamDouble, tmp_path) -> None:
    settings = GliteSettings(endpoint=SETTINGS.endpoint, min_lifetime=2 * 86400)  # the fake proxy lives 24 h
    with pytest.raises(CredentialLifetimeError, match=r"ends in .*the jobs need"):
        submit(GliteJobManager(str(tmp_path), settings), str(tmp_path), 1)
    assert cream_double.calls() == []


def test_status_through_an_id_file_equals_status_on_the_command_line(cream_double: CreamDouble, tmp_path) -> None:
    manager = GliteJobManager(str(tmp_path), SETTINGS)
    _, results = submit(manager, str(tmp_path), 8, code=0)
    _, failing = submit(manager, str(tmp_path), 4, code=1, start=8)
    ids = [r.job_id for r in results + failing if r.job_id]
    wait_ended(manager, ids)
    manager.cancel([])  # nothing to do, no call
    unknown = ["https://cream-double.invalid:8443/DOUBLE_000000000000"]
    plain = GliteJobManager(str(tmp_path), SETTINGS)
    plain.ids_on_argv = 1000
    through_file = GliteJobManager(str(tmp_path), SETTINGS)
    through_file.ids_on_argv = 0
    for subset in (ids, ids[:1], ids[3:9], ids + unknown, unknown):
        assert plain.query(subset) == through_file.query(subset)
    statuses = [c["argv"] for c in cream_double.calls("job-status")]
    assert any("-i" in argv for argv in statuses) and any("-i" not in argv for argv in statuses)
    states = plain.query(ids + unknown)
    assert [states[i].status for i in ids] == [JobStatus.FINISHED] * 8 + [JobStatus.FAILED] * 4
    assert states[unknown[0]].status is JobStatus.UNKNOWN
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".ids")]  # temporary id files removed


def test_cancel_then_purge_leaves_nothing_and_find_reads_the_id_files(cream_double: CreamDouble, tmp_path) -> None:
    manager = GliteJobManager(str(tmp_path), SETTINGS)
    requests = [JobRequest(str(i), (i,)) for i in range(3)]
    ctx = context(str(tmp_path))
    ctx.command = ["python3", "-c", "import time; time.sleep(300)"]
    batches = GliteJobFileFactory(SETTINGS).render(requests, ctx, per_file=1)
    results = manager.submit(batches)
    ids = [r.job_id for r in results if r.job_id]
    expected = {b.name: {0: i} for b, i in zip(batches, ids, strict=True)}
    assert manager.find([b.name for b in batches] + ["pylaw_never"]) == expected
    cream_double.wait_for(lambda: all(j["status"] == "REALLY-RUNNING" for j in cream_double.jobs()), what="running")
    manager.cancel(ids)
    assert {j["status"] for j in cream_double.jobs()} == {"CANCELLED"}
    cream_double.wait_for(lambda: not cream_double.live_groups(), what="the cancelled jobs to end")
    manager.cleanup([])  # the id files name them all
    assert all(j["purged"] for j in cream_double.jobs())
    assert cream_double.live_groups() == []
    assert {s.status for s in manager.query(ids).values()} == {JobStatus.UNKNOWN}


def test_jdl_values_are_quoted_and_the_double_parses_them(cream_double: CreamDouble, tmp_path) -> None:
    job_dir = tmp_path / 'odd "dir" \\ with spaces'
    job_dir.mkdir()
    settings = GliteSettings(endpoint=SETTINGS.endpoint, cerequirements='other.GlueCEUniqueID == "a\\"b"',
                             memory_mb=2048)
    manager = GliteJobManager(str(job_dir), settings)
    batches = GliteJobFileFactory(settings).render([JobRequest("0", (0,))], context(str(job_dir), walltime=3600), 1)
    text = Path(batches[0].path).read_text()
    assert 'CERequirements = "other.GlueCEPolicyMaxWallClockTime >= 60 && other.GlueHostMainMemoryRAMSize >= 2048' \
           ' && (other.GlueCEUniqueID == \\"a\\\\\\"b\\")";' in text
    (result,) = manager.submit(batches)
    (state,) = wait_ended(manager, [result.job_id or ""]).values()
    assert state.status is JobStatus.FINISHED  # the sandbox files were found under the odd path
    (job,) = cream_double.jobs()
    assert job["attributes"]["cerequirements"].endswith('(other.GlueCEUniqueID == "a\\"b")')
    assert os.path.exists(id_path(batches[0].path))


@pytest.mark.parametrize("value", ["line\nbreak", "nul\x00", "tab\tchar"])
def test_control_characters_never_reach_a_jdl(value: str) -> None:
    with pytest.raises(JobFileError, match="control character"):
        jdl.string(value, "x")


@pytest.mark.parametrize("endpoint", ["", "ce.example.org", "ce.example.org:8443", "ce example/q", "ce/q;rm"])
def test_a_bad_endpoint_is_refused(endpoint: str) -> None:
    with pytest.raises(JobFileError, match="host\\[:port\\]/queue"):
        GliteSettings(endpoint=endpoint).check()


def test_service_and_resource_default_the_port() -> None:
    settings = GliteSettings(endpoint="ce.example.org/cream-pbs-cms")
    assert (settings.service, settings.resource) == ("ce.example.org:8443", "ce.example.org:8443/cream-pbs-cms")


def test_polling_warns_when_the_proxy_runs_low(cream_double: CreamDouble, tmp_path, caplog) -> None:
    settings = GliteSettings(endpoint=SETTINGS.endpoint, warn_below=2 * 86400)  # the fake proxy lives 24 h
    manager = GliteJobManager(str(tmp_path), settings)
    with caplog.at_level("WARNING", logger="pylaw.job.credentials"):
        manager.query(["https://cream-double.invalid:8443/DOUBLE_000000000000"])
        manager.query(["https://cream-double.invalid:8443/DOUBLE_000000000000"])
    warnings = [r.getMessage() for r in caplog.records if r.name == "pylaw.job.credentials"]
    assert len(warnings) == 1, warnings  # once per threshold, not once per poll
    assert "ends in" in warnings[0] and "delegates again" in warnings[0]
    assert cream_double.secret not in warnings[0]
