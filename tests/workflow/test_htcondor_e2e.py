"""End-to-end: workflows whose branches run as jobs of a real HTCondor pool (shared-file-system mode).

The submitter is a real ``python -m luigi`` subprocess on the host (so it can be killed
with SIGKILL); the jobs run in the pool's chroot (Debian 13, Python 3.13) with a worker
venv built there once per module (luigi from PyPI, the host's version) and this
repository bind-mounted read-only at the same path. Duplicates and outcomes are checked
against the schedd's own queue and history. The submitter runs with umask 0: the jobs run
as the pool user and write into directories the submitter (root) created.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator

import luigi
import pytest

from tests.services._process import require_module
from tests.services.htcondor import HTCondorPool, PoolKeeper
from tests.workflow.htcondor_e2e_helpers import read_json, read_text, schedd_jobs, wait_for

htcondor2 = require_module("htcondor2")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASK_FAILED = 40
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"


class Pool:
    """The running pool, its worker venv, and the schedd's view of jobs."""

    def __init__(self, pool: HTCondorPool, venv: str) -> None:
        self.pool, self.venv = pool, venv

    def schedd(self):
        return self.pool.schedd()

    def jobs(self, prefix: str = "pylaw_") -> dict[str, dict]:
        """Every job of the queue and the history whose batch name starts with ``prefix``, by id."""
        return schedd_jobs(self.schedd(), prefix)


@pytest.fixture(scope="module")
def pool(htcondor_pools: PoolKeeper) -> Iterator[Pool]:
    """The pool with this repository bound in, and a worker venv with luigi built inside the chroot."""
    pool = htcondor_pools.get(binds=[ROOT])
    base = pool.new_dir("venv")
    venv = os.path.join(base, "venv")
    pool.run_inside(["python3", "-m", "venv", venv], timeout=120)
    # the host's CA bundle: where PyPI is reached through a TLS proxy, the chroot's does not know it
    cert = os.path.join(base, "ca.crt")
    shutil.copy(HOST_CA, cert)
    pool.run_inside([f"{venv}/bin/pip", "install", "-q", "--cert", cert, f"luigi=={luigi.__version__}"],
                    timeout=300)
    yield Pool(pool, venv)


class Run:
    """One test's store, config and submitter command line."""

    def __init__(self, pool: Pool, extra_config: str = "") -> None:
        self.pool = pool
        self.dir = pool.pool.new_dir("test")
        self.store = os.path.join(self.dir, "store")
        self.markers = os.path.join(self.dir, "markers")
        os.makedirs(self.markers, mode=0o777)
        os.chmod(self.markers, 0o777)
        self.config = os.path.join(self.dir, "luigi.cfg")
        with open(self.config, "w") as f:
            f.write(f"[core]\nlog_level = WARNING\n[job]\nvenv = {pool.venv}\n{extra_config}")
        self.env = {**os.environ, "PYTHONPATH": ROOT, "PYLAW_STORE": self.store, "LUIGI_CONFIG_PATH": self.config}

    def command(self, *args: str, task: str = "Square", workflow: str = "htcondor") -> list[str]:
        extra = ["--marker-dir", self.markers] if task == "Square" else []
        choice = ["--workflow", workflow] if workflow else []
        return [sys.executable, "-m", "luigi", "--module", "tests.workflow.htcondor_tasks", task, "--version", "v1",
                *choice, "--local-scheduler", "--poll-interval", "1", "--retcode-task-failed", str(TASK_FAILED),
                *extra, *args]

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args, **kwargs), env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.umask(0), cwd=self.dir)

    def run(self, *args: str, timeout: float = 300, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args, **kwargs), env=env or self.env, capture_output=True, text=True,
                              timeout=timeout, preexec_fn=lambda: os.umask(0), cwd=self.dir)

    def outputs(self, task: str = "Square", stem: str = "square") -> dict[int, dict]:
        files = glob.glob(os.path.join(self.store, task, "v1", "*", f"{stem}_*.json"))
        return {int(os.path.basename(f)[len(stem) + 1:-5]): read_json(f) for f in files}

    def job_dir(self, task: str = "Square") -> str:
        (found,) = glob.glob(os.path.join(self.store, task, "v1", "*", "_pylaw_htcondor_jobs"))
        return found

    def state(self, task: str = "Square") -> dict:
        return read_json(os.path.join(self.job_dir(task), "submission.json"))


def new_jobs(pool: Pool, before: set[str], prefix: str = "pylaw_Square_") -> dict[str, dict]:
    return {job_id: ad for job_id, ad in pool.jobs(prefix).items() if job_id not in before}


def test_fifty_branches_three_per_job_complete_as_one_cluster(pool):
    run, before = Run(pool), set(pool.jobs())
    result = run.run("--n", "50", "--tasks-per-job", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    done = run.outputs()
    assert sorted(done) == list(range(50)) and all(done[b]["square"] == b * b for b in done)
    jobs = new_jobs(pool, before)
    assert len(jobs) == 17, "ceil(50 / 3) jobs, no more"
    assert len({ad["ClusterId"] for ad in jobs.values()}) == 1, "all 17 jobs were ONE cluster"
    assert len({ad["JobBatchName"] for ad in jobs.values()}) == 1
    assert {(ad["JobStatus"], ad["ExitCode"]) for ad in jobs.values()} == {(4, 0)}
    assert {ad["ProcId"] for ad in jobs.values()} == set(range(17))
    # three branches per job, each written inside one of the cluster's jobs, in the chroot's userland
    assert len({done[b]["condor_job"] for b in done}) == 17 and {done[b]["condor_job"] for b in done} == set(jobs)
    assert "htcondor: 50 branches: 50 done, 0 failed" in result.stdout
    state = run.state()
    assert state["closed"] and len(state["jobs"]) == 17
    assert sorted(b for r in state["jobs"].values() for b in r["branches"]) == list(range(50))  # no branch twice
    record = next(iter(state["jobs"].values()))
    assert set(record["backend_data"]) == {"cluster", "proc", "schedd"}
    # the submit description is a file next to the jobs, one item per job
    (description,) = glob.glob(os.path.join(run.job_dir(), "*.sub"))
    assert "queue pylaw_item from (" in read_text(description)


def test_job_failing_first_attempt_is_resubmitted(pool):
    run, before = Run(pool), set(pool.jobs())
    result = run.run("--n", "6", "--tasks-per-job", "2", "--flaky", "3", "--retries", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(run.outputs()) == list(range(6))
    jobs = new_jobs(pool, before)
    assert sorted(ad["ExitCode"] for ad in jobs.values()) == [0, 0, 0, 4]  # 3 jobs + 1 resubmission
    assert len({ad["ClusterId"] for ad in jobs.values()}) == 2  # the first cluster, then the retry
    (retried,) = [r for r in run.state()["jobs"].values() if r["attempt"] == 2]
    assert retried["branches"] == [3] and retried["history"][0]["exit_code"] == 4


def test_held_job_is_reported_with_its_reason_removed_and_retried(pool):
    run, before = Run(pool), set(pool.jobs())
    proc = run.popen("--n", "2", "--stall", "1", "--retries", "1")
    try:
        wait_for(lambda: 0 in run.outputs() and read_marker(run, "stall_1"), what="branch 0 done, branch 1 stalled")
        # branch 0's job may still be ending (its output exists): wait until only the stalled one runs
        (held,) = wait_for(lambda: len(running := [i for i, ad in new_jobs(pool, before).items()
                                                   if ad["JobStatus"] == 2]) == 1 and running,
                           what="the stalled job running alone")
        pool.schedd().act(htcondor2.JobAction.Hold, [held], ("held by the test on purpose", 42))
        out, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 0, out + err
    assert sorted(run.outputs()) == [0, 1]  # the retry ran branch 1 (not stalling the second time)
    jobs = new_jobs(pool, before)
    assert len(jobs) == 3
    assert jobs[held]["JobStatus"] == 3, "the held job was removed, not left in the queue"
    assert jobs[held]["RemoveReason"].startswith("pylaw: held jobs are removed"), jobs[held]
    (record,) = [r for r in run.state()["jobs"].values() if r["attempt"] == 2]
    assert record["history"][0]["job_id"] == held and record["history"][0]["status"] == "failed"
    assert record["history"][0]["reason"].startswith("held: held by the test on purpose")
    assert not [i for i, ad in jobs.items() if ad["JobStatus"] in (1, 2, 5)], "nothing lingers in the queue"


def read_marker(run: Run, name: str) -> bool:
    return os.path.exists(os.path.join(run.markers, name))


def test_branch_always_failing_is_given_up_and_tolerance_decides(pool):
    run = Run(pool)
    tolerated = run.run("--n", "5", "--broken", "2", "--retries", "0", "--tolerance", "1")
    assert tolerated.returncode == 0, tolerated.stdout + tolerated.stderr
    assert "5 branches: 4 done, 1 failed" in tolerated.stdout
    assert sorted(run.outputs()) == [0, 1, 3, 4]

    before = set(pool.jobs())
    failed = run.run("--n", "5", "--broken", "2", "--retries", "1")
    assert failed.returncode == TASK_FAILED, failed.stdout + failed.stderr
    assert "1 of 5 branches of Square failed for good (2) after 2 attempts" in failed.stdout + failed.stderr
    assert [ad["ExitCode"] for ad in new_jobs(pool, before).values()] == [4, 4]
    log = glob.glob(os.path.join(run.job_dir(), "logs", "job*_attempt2_branch2.log"))
    assert log and "broken on purpose" in read_text(log[0])


def test_kill_9_then_rerun_reattaches_without_duplicates(pool):
    run, before = Run(pool), set(pool.jobs())
    args = ("--n", "50", "--tasks-per-job", "3", "--parallel-jobs", "4", "--sleep", "1")
    proc = run.popen(*args)
    state_file = os.path.join(run.store, "Square", "v1", "*", "_pylaw_htcondor_jobs", "submission.json")

    def some_submitted() -> bool:
        files = glob.glob(state_file)
        try:
            return bool(files) and sum(1 for r in read_json(files[0])["jobs"].values() if r["job_id"]) >= 4
        except (ValueError, OSError):
            return False

    wait_for(some_submitted, what="four submitted jobs")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    submitted_before_kill = len(new_jobs(pool, before))
    assert 0 < submitted_before_kill < 17, "the kill should happen mid-way"

    result = run.run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(run.outputs()) == list(range(50))
    jobs = new_jobs(pool, before)
    assert len(jobs) == 17, f"duplicate submissions: {len(jobs)} jobs for 17 chunks"
    assert {(ad["JobStatus"], ad["ExitCode"]) for ad in jobs.values()} == {(4, 0)}
    assert sorted(b for r in run.state()["jobs"].values() for b in r["branches"]) == list(range(50))


def test_cancel_jobs_leaves_nothing_in_the_queue(pool):
    run, before = Run(pool), set(pool.jobs())
    args = ("--n", "12", "--sleep", "300", "--tasks-per-job", "2")
    submitted = run.run(*args, "--no-poll")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert len(new_jobs(pool, before)) == 6
    cancelled = run.run(*args, "--cancel-jobs")
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert "cancelled 6 jobs" in cancelled.stdout
    ids = set(new_jobs(pool, before))
    queue = {f"{ad['ClusterId']}.{ad['ProcId']}" for ad in pool.schedd().query(projection=["ClusterId", "ProcId"])}
    assert not ids & queue, "cancelled jobs are still in the queue"
    assert {ad["JobStatus"] for ad in new_jobs(pool, before).values()} == {3}
    assert run.outputs() == {}
    directory = run.job_dir()
    cleaned = run.run(*args, "--cleanup-jobs")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert not os.path.exists(directory)


def test_values_reach_the_task_verbatim_and_no_secret_is_written(pool):
    run = Run(pool)
    nasty = "a b 'c' \"d\" $(touch PWNED) $$(Arch) `touch PWNED2` ; \\ $HOME\nnext line * ? ,"
    env = {**run.env, "PYLAW_TEST_API_TOKEN": "s3cr3t-value", "X509_USER_PROXY": "/tmp/x509up_s3cr3t"}
    result = run.run("--n", "2", "--text", nasty, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    done = run.outputs()
    assert {b: out["text"] for b, out in done.items()} == {0: nasty, 1: nasty}
    assert not glob.glob(os.path.join(run.dir, "**", "PWNED*"), recursive=True)
    assert "PYLAW_TEST_API_TOKEN" not in done[0]["env"] and "X509_USER_PROXY" not in done[0]["env"]
    files = [p for p in glob.glob(os.path.join(run.job_dir(), "**", "*"), recursive=True) if os.path.isfile(p)]
    assert any(p.endswith(".sub") for p in files) and any(p.endswith(".log") for p in files)
    for path in files:
        text = read_text(path)
        assert "s3cr3t" not in text, path
        if path.endswith(".sub"):
            assert "PWNED" not in text and "next line" not in text, "a user value reached the submit description"


def test_computing_element_of_type_htcondor(pool):
    config = ("[ce:testpool]\ntype = htcondor\nmemory = 64M\nwalltime = 10m\n"
              "submit_options = +PylawTest = \"chosen-by-ce\"\n")
    run, before = Run(pool, config), set(pool.jobs())
    result = run.run("--n", "3", "--ce", "testpool", workflow="")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(run.outputs()) == [0, 1, 2]
    jobs = new_jobs(pool, before)
    assert len(jobs) == 3
    assert {(ad["RequestMemory"], ad["MaxRuntime"], ad["PylawTest"]) for ad in jobs.values()} == {
        (64, 600, "chosen-by-ce")}, "the computing element's settings reached the jobs"


def test_chain_of_two_htcondor_workflows_from_one_command(pool):
    run, before = Run(pool), set(pool.jobs())
    result = run.run("--n", "3", task="Stage2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {b: out["value"] for b, out in run.outputs("Stage2", "stage2").items()} == {0: 3, 1: 4, 2: 5}
    stage1 = new_jobs(pool, before, "pylaw_Stage1_")
    stage2 = new_jobs(pool, before, "pylaw_Stage2_")
    assert len(stage1) == 3 and len(stage2) == 3
    assert len({ad["ClusterId"] for ad in stage1.values()}) == 1
    assert len({ad["ClusterId"] for ad in stage2.values()}) == 1
    assert max(int(i.split(".")[0]) for i in stage1) < min(int(i.split(".")[0]) for i in stage2)


def test_pylaw_status_refresh_asks_the_schedd_and_removes_nothing(pool):
    """``pylaw status --refresh`` on the real pool: the schedd's states, held jobs left alone (the submitter acts)."""
    run, before = Run(pool), set(pool.jobs())
    args = ("--n", "6", "--sleep", "300", "--tasks-per-job", "2")
    submitted = run.run(*args, "--no-poll")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    status = [os.path.join(os.path.dirname(sys.executable), "pylaw"), "status", "tests.workflow.htcondor_tasks",
              "Square", "--version", "v1", "--workflow", "htcondor", "--n", "6", "--json", "--refresh"]
    try:
        ids = set(new_jobs(pool, before))
        assert len(ids) == 3
        wait_for(lambda: any(ad["JobStatus"] == 2 for ad in new_jobs(pool, before).values()), 120)
        held = sorted(ids)[0]
        pool.schedd().act(htcondor2.JobAction.Hold, [held], ("held by the test on purpose", 42))
        wait_for(lambda: new_jobs(pool, before)[held]["JobStatus"] == 5, 60)
        names = {1: "pending", 2: "running", 5: "failed"}  # held: failed, as HTCondorJobManager maps it
        seen = {i: names.get(ad["JobStatus"]) for i, ad in new_jobs(pool, before).items()}
        result = subprocess.run(status, env=run.env, cwd=run.dir, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        (task,) = [t for t in json.loads(result.stdout)["tasks"] if t["family"] == "Square"]
        (submission,) = task["workflow"]["submissions"]
        live = {job["job_id"]: job["live"] for job in submission["job_list"]}
        assert set(live) == ids and submission["refreshed"]
        assert live == seen, (live, seen)
        assert new_jobs(pool, before)[held]["JobStatus"] == 5, "status removed a held job"
    finally:
        cancelled = run.run(*args, "--cancel-jobs")
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
