"""End-to-end: GliteWorkflow through ``--ce`` of type glite, against the CREAM CLI TEST DOUBLE.

No CREAM CE can run here: the double (tests/doubles/glite_ce) stands in for the CE and
its CLI, runs jobs as local processes in copies of their input sandboxes with an empty
environment, and keeps its own records, from which every outcome and duplicate is
checked. The jobs get pylaw and luigi from the bundle and run on Debian's
``/usr/bin/python3`` (no luigi there); branch outputs go to the test suite's real XRootD.
The submitter is a real ``python -m luigi`` subprocess (killed with SIGKILL in one test).
"""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
import uuid

import pytest

from tests.doubles.glite_ce.fixture import CreamDouble, cream_double  # noqa: F401 - the fixture
from tests.services.xrootd import XRootDServer, xrootd_server  # noqa: F401 - the fixture
from tests.workflow.htcondor_e2e_helpers import read_json, read_text, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_SECRET = "s3cr3t-in-the-luigi-config"


class Run:
    """One test's store, config (a [ce:cream] of type glite), storage prefix and submitter command line."""

    def __init__(self, double: CreamDouble, xrootd: XRootDServer, tmp_path, ce: str = "") -> None:
        self.double, self.xrootd, self.dir = double, xrootd, str(tmp_path)
        self.store = os.environ["PYLAW_STORE"]
        self.markers = os.path.join(self.dir, "markers")
        os.makedirs(self.markers)
        self.prefix = f"glite-{uuid.uuid4().hex[:8]}"
        self.config = os.path.join(self.dir, "luigi.cfg")
        with open(self.config, "w") as f:
            f.write(f"[core]\nlog_level = WARNING\n[retcode]\ntask_failed = 3\nscheduling_error = 4\n"
                    f"[ce:cream]\ntype = glite\nendpoint = {double.endpoint}\nworker_python = /usr/bin/python3\n{ce}"
                    f"[storage:xrd]\nbase = {xrootd.url}/{self.prefix}\ninterface = xrootd\nretries = 1\n"
                    f"[bundle]\ncache_dir = {self.dir}/bundles\n"
                    f"[grid_test]\napi_password = {CONFIG_SECRET}\n")
        self.env = {**os.environ, "PYTHONPATH": ROOT, "LUIGI_CONFIG_PATH": self.config}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "luigi", "--module", "tests.workflow.glite_tasks", "GliteSquare",
                "--version", "v1", "--local-scheduler", "--ce", "cream", "--poll-interval", "1",
                "--marker-dir", self.markers, *args]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), env=self.env, capture_output=True, text=True, timeout=timeout,
                              cwd=self.dir)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=self.dir)

    def outputs(self, tag: str) -> dict[int, dict]:
        files = glob.glob(self.xrootd.local_path(f"{self.prefix}/grid/{tag}/square_*.json"))
        return {int(os.path.basename(f)[7:-5]): read_json(f) for f in files}

    def job_dir(self, tag: str) -> str:
        (found,) = glob.glob(os.path.join(self.store, "GliteSquare", "v1", "*", f"tag={tag}", "_pylaw_glite_jobs"))
        return found

    def state(self, tag: str) -> dict:
        return read_json(os.path.join(self.job_dir(tag), "submission.json"))


def branches_ok(double: CreamDouble) -> dict[int, list[str]]:
    """Branch -> the double's jobs whose output (pylaw.out in the CE's sandbox) reports it ok."""
    found: dict[int, list[str]] = {}
    for job in double.jobs():
        path = os.path.join(double.state, "jobs", str(job["number"]), "sandbox", "pylaw.out")
        if os.path.exists(path):
            for line in read_text(path).splitlines():
                if line.startswith("pylaw-job: branch ") and " ok " in line:
                    found.setdefault(int(line.split()[2]), []).append(job["id"])
    return found


def assert_no_secret(double: CreamDouble, *places: str, texts: tuple[str, ...] = ()) -> None:
    """Neither the proxy's marker nor its private key (nor the config's password) is in any file or message."""
    with open(double.proxy) as f:
        proxy = f.read()
    key_lines = [line for line in proxy.split("-----BEGIN PRIVATE KEY-----")[1].splitlines()[1:4] if line]
    secrets = [double.secret, "PRIVATE KEY", *key_lines, CONFIG_SECRET]
    files = [p for place in places for p in glob.glob(os.path.join(place, "**", "*"), recursive=True)
             if os.path.isfile(p) and not p.endswith(".tar.gz")]
    assert files
    for text, where in [*((read_text(p), p) for p in files), *((t, "a message") for t in texts)]:
        for secret in secrets:
            assert secret not in text, f"{secret[:30]}... in {where}"


def test_a_multi_branch_workflow_completes_and_a_failing_job_is_resubmitted(
        cream_double: CreamDouble, xrootd_server: XRootDServer, tmp_path) -> None:  # noqa: F811
    run = Run(cream_double, xrootd_server, tmp_path)
    result = run.run("--n", "10", "--tasks-per-job", "3", "--flaky", "4", "--retries", "1", "--tag", "a")
    assert result.returncode == 0, result.stdout + result.stderr
    done = run.outputs("a")
    assert sorted(done) == list(range(10)) and all(done[b]["square"] == b * b for b in done)
    jobs = cream_double.jobs()
    assert len(jobs) == 5, "ceil(10 / 3) jobs plus one resubmission, no more"
    assert sorted(job["status"] for job in jobs) == ["DONE-FAILED"] + ["DONE-OK"] * 4
    (failed,) = [job for job in jobs if job["status"] == "DONE-FAILED"]
    assert failed["exit_code"] == 4  # the wrapper's "a branch task failed"
    # one delegation for the whole workflow, used by every job
    (delegation,) = cream_double.delegations()
    assert {job["delegation"] for job in jobs} == {delegation}
    assert len(cream_double.calls("delegate-proxy")) == 1 and len(cream_double.calls("job-submit")) == 5
    # each branch ran to success in exactly one job; the code came from the bundle
    assert {b: len(ids) for b, ids in branches_ok(cream_double).items()} == {b: 1 for b in range(10)}
    (bundle,) = glob.glob(os.path.join(run.dir, "bundles", "pylaw-bundle-*.tar.gz"))
    digest = os.path.basename(bundle)[len("pylaw-bundle-"):-len(".tar.gz")]
    assert all(f"/{digest}/site/pylaw/" in out["pylaw"] and out["executable"].endswith("/bin/python")
               for out in done.values())
    assert all(out["cwd"].startswith(cream_double.state) for out in done.values()), "jobs ran in the CE's sandbox"
    # the state keeps the CREAM job URL and the delegation per job; the retry's history names the failure
    state = run.state("a")
    ids = {job["id"] for job in jobs}
    for record in state["jobs"].values():
        assert record["job_id"] in ids and record["backend_data"]["job_url"] == record["job_id"]
        assert record["backend_data"]["delegation"] == delegation
    (retried,) = [r for r in state["jobs"].values() if r["attempt"] == 2]
    assert retried["branches"] == [4] and retried["history"][0]["exit_code"] == 4
    # the output sandboxes came back: one log per branch and attempt
    logs = os.listdir(os.path.join(run.job_dir("a"), "logs"))
    assert len(logs) == 11 and any("_attempt1_branch4" in name for name in logs)
    assert_no_secret(cream_double, run.job_dir("a"), cream_double.state, texts=(result.stdout, result.stderr))


def test_kill_9_then_rerun_reattaches_without_duplicates(
        cream_double: CreamDouble, xrootd_server: XRootDServer, tmp_path) -> None:  # noqa: F811
    run = Run(cream_double, xrootd_server, tmp_path)
    args = ("--n", "8", "--tasks-per-job", "2", "--sleep", "4", "--tag", "kill")
    proc = run.popen(*args)
    state_file = os.path.join(run.store, "GliteSquare", "v1", "*", "tag=kill", "_pylaw_glite_jobs", "submission.json")

    def all_submitted() -> bool:
        files = glob.glob(state_file)
        try:
            return bool(files) and sum(1 for r in read_json(files[0])["jobs"].values() if r["job_id"]) == 4
        except (ValueError, OSError):
            return False

    try:
        wait_for(all_submitted, timeout=120, what="four submitted jobs")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert len(cream_double.jobs()) == 4
    assert any(job["status"] not in ("DONE-OK", "DONE-FAILED") for job in cream_double.jobs()), \
        "the kill should happen while jobs run"
    result = run.run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(run.outputs("kill")) == list(range(8))
    jobs = cream_double.jobs()
    assert len(jobs) == 4, f"duplicate submissions: {len(jobs)} jobs for 4 chunks"
    assert {job["status"] for job in jobs} == {"DONE-OK"}
    assert {b: len(ids) for b, ids in branches_ok(cream_double).items()} == {b: 1 for b in range(8)}
    assert len(cream_double.delegations()) == 1, "the rerun reused the workflow's delegation"
    assert sorted(b for r in run.state("kill")["jobs"].values() for b in r["branches"]) == list(range(8))


def test_cancel_and_cleanup_leave_nothing_behind(
        cream_double: CreamDouble, xrootd_server: XRootDServer, tmp_path) -> None:  # noqa: F811
    run = Run(cream_double, xrootd_server, tmp_path)
    args = ("--n", "6", "--tasks-per-job", "2", "--sleep", "600", "--tag", "c")
    submitted = run.run(*args, "--no-poll")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    cream_double.wait_for(lambda: [j["status"] for j in cream_double.jobs()].count("REALLY-RUNNING") == 3,
                          what="three running jobs")
    cancelled = run.run(*args, "--cancel-jobs")
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert "cancelled 3 jobs" in cancelled.stdout
    assert {job["status"] for job in cream_double.jobs()} == {"CANCELLED"}
    cream_double.wait_for(lambda: not cream_double.live_groups(), what="the cancelled jobs' processes to end")
    job_dir = run.job_dir("c")
    assert_no_secret(cream_double, job_dir, cream_double.state,
                     texts=(submitted.stdout, submitted.stderr, cancelled.stdout, cancelled.stderr))
    cleaned = run.run(*args, "--cleanup-jobs")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert all(job["purged"] for job in cream_double.jobs()), "every job was purged from the CE"
    assert not os.path.exists(job_dir)
    assert cream_double.live_groups() == [] and run.outputs("c") == {}


def test_a_proxy_shorter_than_the_walltime_fails_before_anything_is_submitted(
        cream_double: CreamDouble, xrootd_server: XRootDServer, tmp_path) -> None:  # noqa: F811
    run = Run(cream_double, xrootd_server, tmp_path, ce="walltime = 2d\n")  # the fake proxy lives 24 h
    result = run.run("--n", "2", "--tag", "short")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "but the jobs need" in output and "nothing was submitted" in output and "voms-proxy-init" in output
    assert cream_double.calls() == [] and cream_double.jobs() == []


@pytest.mark.parametrize(("key", "value", "message"), [
    ("endpoint", "cream.example.org", "host\\[:port\\]/queue"),
    ("submit_threads", "0", "submit_threads must be at least 1"),
    ("endpont", "x/y", "did you mean 'endpoint'"),
])
def test_bad_computing_element_settings_are_errors(cream_double: CreamDouble, xrootd_server: XRootDServer,  # noqa: F811
                                                   tmp_path, key: str, value: str, message: str) -> None:
    run = Run(cream_double, xrootd_server, tmp_path, ce=f"{key} = {value}\n")
    if key == "endpoint":  # replace, do not add a second one
        with open(run.config) as f:
            text = f.read().replace(f"endpoint = {cream_double.endpoint}\n", "", 1)
        with open(run.config, "w") as f:
            f.write(text)
    result = run.run("--n", "1", "--tag", "bad")
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr), result.stdout + result.stderr
    assert cream_double.jobs() == []
