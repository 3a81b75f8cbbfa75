"""End-to-end: the grid case. Jobs without a shared file system, code by bundle, outputs on XRootD.

The HTCondor pool runs with NO binds: its jobs (Debian 13, Python 3.13, no luigi) see
nothing of the host but the pool's ``shared_dir``, where the store, the job directories and
the bundle cache live (the shadow runs in the chroot and reads the files it transfers
there). HTCondor transfers the wrapper, the bundle and the submitter's Luigi config in and
``logs/`` back; branch outputs go to the test suite's real XRootD through ``[storage:xrd]``,
which jobs know only from the shipped config. The submitter is a real ``python -m luigi``
subprocess (killed with SIGKILL in one test); outcomes and duplicates are checked against
the schedd's queue and history and the XRootD server's disk.

The same workflow then runs with ``--ce`` on the test suite's real Slurm with ``software =
bundle`` and ``worker_python = /usr/bin/python3``: Debian's system python has no luigi,
so a branch only runs if the bundle brings it.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.services._process import require_module
from tests.services.htcondor import HTCondorPool, PoolKeeper
from tests.services.slurm import SlurmCluster, slurm_cluster  # noqa: F401 - fixture
from tests.services.xrootd import XRootDServer, xrootd_server  # noqa: F401 - fixture
from tests.workflow.htcondor_e2e_helpers import read_json, read_text, schedd_jobs, wait_for

require_module("htcondor2")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET = "s3cr3t-in-config"


class Grid:
    """The pool without binds, the XRootD server and a bundle cache all tests of the module share."""

    def __init__(self, pool: HTCondorPool, xrootd: XRootDServer) -> None:
        self.pool, self.xrootd = pool, xrootd
        self.bundles = pool.new_dir("bundles")

    def jobs(self, prefix: str = "pylaw_GridSquare_") -> dict[str, dict]:
        return schedd_jobs(self.pool.schedd(), prefix)

    def bundle_files(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.bundles, "pylaw-bundle-*.tar.gz")))


@pytest.fixture(scope="module")
def grid(htcondor_pools: PoolKeeper, xrootd_server: XRootDServer) -> Iterator[Grid]:  # noqa: F811
    yield Grid(htcondor_pools.get(), xrootd_server)


class Run:
    """One test's store (in the pool's shared dir), config, storage prefix and submitter command line."""

    def __init__(self, grid: Grid, ce: str = "[ce:pool]\ntype = htcondor\nfile_transfer = true\n"
                                              "worker_python = /usr/bin/python3\n", jobs: str = "htcondor",
                 family: str = "GridSquare") -> None:
        self.grid, self.jobs_name, self.family = grid, jobs, family
        self.dir = grid.pool.new_dir("grid")
        self.store = os.path.join(self.dir, "store")
        self.markers = os.path.join(self.dir, "markers")
        os.makedirs(self.markers, mode=0o777)
        os.chmod(self.markers, 0o777)
        self.prefix = f"grid-{uuid.uuid4().hex[:8]}"
        self.config = os.path.join(self.dir, "luigi.cfg")
        with open(self.config, "w") as f:  # an untracked file: only the shipped copy reaches the jobs
            f.write(f"[core]\nlog_level = WARNING\n{ce}"
                    f"[storage:xrd]\nbase = {grid.xrootd.url}/{self.prefix}\ninterface = xrootd\nretries = 1\n"
                    f"[bundle]\ncache_dir = {grid.bundles}\n"
                    f"[grid_test]\napi_password = {SECRET}\nharmless = kept\n")
        self.env = {**os.environ, "PYTHONPATH": ROOT, "PYLAW_STORE": self.store, "LUIGI_CONFIG_PATH": self.config}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "luigi", "--module", "tests.workflow.grid_tasks", self.family,
                "--version", "v1", "--local-scheduler", "--poll-interval", "1", "--marker-dir", self.markers, *args]

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, preexec_fn=lambda: os.umask(0), cwd=self.dir)

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), env=self.env, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=lambda: os.umask(0), cwd=self.dir)

    def outputs(self, tag: str) -> dict[int, dict]:
        """The branch outputs as the XRootD server stored them on its disk."""
        files = glob.glob(self.grid.xrootd.local_path(f"{self.prefix}/grid/{tag}/square_*.json"))
        return {int(os.path.basename(f)[7:-5]): read_json(f) for f in files}

    def job_dir(self, tag: str) -> str:
        pattern = os.path.join(self.store, self.family, "v1", "*", f"tag={tag}", f"_pylaw_{self.jobs_name}_jobs")
        (found,) = glob.glob(pattern)
        return found

    def state(self, tag: str) -> dict:
        return read_json(os.path.join(self.job_dir(tag), "submission.json"))


def new_jobs(grid: Grid, before: set[str]) -> dict[str, dict]:
    return {job_id: ad for job_id, ad in grid.jobs().items() if job_id not in before}


def assert_from_bundle(outputs: dict[int, dict], bundle: str, python: list[int] | None = None) -> None:
    """Every branch ran on the worker's python with pylaw and luigi from the unpacked ``bundle``."""
    digest = os.path.basename(bundle)[len("pylaw-bundle-"):-len(".tar.gz")]
    for branch, out in outputs.items():
        for package in ("pylaw", "luigi"):
            path = out[package]
            assert f"/{digest}/site/{package}/" in path, (branch, package, path)
            assert not path.startswith((ROOT, sys.prefix, "/work/")), (branch, package, path)
        if python is not None:
            assert out["python"] == python, out


def assert_no_secret(job_dir: str) -> None:
    files = [p for p in glob.glob(os.path.join(job_dir, "**", "*"), recursive=True) if os.path.isfile(p)]
    assert files
    for path in files:
        assert SECRET not in read_text(path), path


def test_fifty_branches_by_bundle_to_xrootd_as_one_cluster(grid):
    run, before = Run(grid), set(grid.jobs())
    result = run.run("--ce", "pool", "--n", "50", "--tasks-per-job", "3", "--tag", "a")
    assert result.returncode == 0, result.stdout + result.stderr
    done = run.outputs("a")
    assert sorted(done) == list(range(50)) and all(done[b]["square"] == b * b for b in done)
    jobs = new_jobs(grid, before)
    assert len(jobs) == 17, "ceil(50 / 3) jobs, no more"
    assert len({ad["ClusterId"] for ad in jobs.values()}) == 1, "all 17 jobs were ONE cluster"
    assert {(ad["JobStatus"], ad["ExitCode"]) for ad in jobs.values()} == {(4, 0)}
    assert {done[b]["condor_job"] for b in done} == set(jobs)
    state = run.state("a")
    assert sorted(b for r in state["jobs"].values() for b in r["branches"]) == list(range(50))  # no branch twice
    (bundle,) = grid.bundle_files()
    assert_from_bundle(done, bundle, python=[3, 13])
    assert all(not out["cwd"].startswith(run.dir) for out in done.values()), "jobs ran in HTCondor's scratch"
    job_dir = run.job_dir("a")
    # the branch logs came back by transfer; the config went in, without the credential-like key
    logs = sorted(os.listdir(os.path.join(job_dir, "logs")))
    assert len(logs) == 50 and all(name.startswith("job") and "_attempt1_branch" in name for name in logs)
    config = read_text(os.path.join(job_dir, "pylaw_luigi.cfg"))
    assert "[storage:xrd]" in config and "harmless = kept" in config and "api_password" not in config
    (description,) = glob.glob(os.path.join(job_dir, "*.sub"))
    text = read_text(description)
    assert f"transfer_input_files = {job_dir}/pylaw_wrapper.sh, {bundle}, {job_dir}/pylaw_luigi.cfg" in text
    assert_no_secret(job_dir)

    # a second workflow (other parameter values) reuses the bundle file: same path, not rewritten
    mtime = os.stat(bundle).st_mtime_ns
    again = run.run("--ce", "pool", "--n", "4", "--tasks-per-job", "2", "--tag", "b")
    assert again.returncode == 0, again.stdout + again.stderr
    assert grid.bundle_files() == [bundle] and os.stat(bundle).st_mtime_ns == mtime
    second = run.outputs("b")
    assert sorted(second) == [0, 1, 2, 3]
    assert_from_bundle(second, bundle, python=[3, 13])
    assert bundle in read_text(glob.glob(os.path.join(run.job_dir("b"), "*.sub"))[0])


def test_failing_first_attempt_is_resubmitted_by_bundle(grid):
    run, before = Run(grid), set(grid.jobs())
    result = run.run("--ce", "pool", "--n", "6", "--tasks-per-job", "2", "--flaky", "3", "--retries", "1",
                     "--tag", "flaky")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(run.outputs("flaky")) == list(range(6))
    jobs = new_jobs(grid, before)
    assert sorted(ad["ExitCode"] for ad in jobs.values()) == [0, 0, 0, 4]  # 3 jobs + 1 resubmission
    assert len({ad["ClusterId"] for ad in jobs.values()}) == 2
    (retried,) = [r for r in run.state("flaky")["jobs"].values() if r["attempt"] == 2]
    assert retried["branches"] == [3] and retried["history"][0]["exit_code"] == 4
    log = glob.glob(os.path.join(run.job_dir("flaky"), "logs", "job*_attempt1_branch3.log"))
    assert log and "fails on its first attempt on purpose" in read_text(log[0])


def test_kill_9_then_rerun_reattaches_without_duplicates_by_bundle(grid):
    run, before = Run(grid), set(grid.jobs())
    args = ("--ce", "pool", "--n", "50", "--tasks-per-job", "3", "--parallel-jobs", "4", "--sleep", "1",
            "--tag", "kill")
    proc = run.popen(*args)
    state_file = os.path.join(run.store, "GridSquare", "v1", "*", "tag=kill", "_pylaw_htcondor_jobs", "submission.json")

    def some_submitted() -> bool:
        files = glob.glob(state_file)
        try:
            return bool(files) and sum(1 for r in read_json(files[0])["jobs"].values() if r["job_id"]) >= 4
        except (ValueError, OSError):
            return False

    try:
        wait_for(some_submitted, timeout=180, what="four submitted jobs")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    submitted_before_kill = len(new_jobs(grid, before))
    assert 0 < submitted_before_kill < 17, "the kill should happen mid-way"

    result = run.run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(run.outputs("kill")) == list(range(50))
    jobs = new_jobs(grid, before)
    assert len(jobs) == 17, f"duplicate submissions: {len(jobs)} jobs for 17 chunks"
    assert {(ad["JobStatus"], ad["ExitCode"]) for ad in jobs.values()} == {(4, 0)}
    assert sorted(b for r in run.state("kill")["jobs"].values() for b in r["branches"]) == list(range(50))


def test_slurm_computing_element_by_bundle_to_xrootd(grid, slurm_cluster: SlurmCluster):  # noqa: F811
    """Debian's /usr/bin/python3 has no luigi: the branches can only run through the bundle."""
    probe = subprocess.run(["/usr/bin/python3", "-c", "import luigi"], capture_output=True, env={"PATH": "/usr/bin"})
    assert probe.returncode != 0, "the host's system python has luigi: this test would prove nothing"
    ce = "[ce:cluster]\ntype = slurm\nsoftware = bundle\nworker_python = /usr/bin/python3\n"
    run, before = Run(grid, ce=ce, jobs="slurm", family="GridSquareSlurm"), set(grid.jobs(""))
    result = run.run("--ce", "cluster", "--n", "7", "--tasks-per-job", "3", "--tag", "slurm")
    assert result.returncode == 0, result.stdout + result.stderr
    done = run.outputs("slurm")
    assert sorted(done) == list(range(7)) and all(done[b]["square"] == b * b for b in done)
    assert len({out["slurm_job"] for out in done.values()}) == 3 and all(out["slurm_job"] for out in done.values())
    (bundle,) = grid.bundle_files()
    assert_from_bundle(done, bundle)
    system = subprocess.run(["/usr/bin/python3", "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert {tuple(out["python"]) for out in done.values()} == {tuple(map(int, system))}
    assert all(out["executable"].endswith("/bin/python") and not out["condor_job"] for out in done.values())
    assert set(grid.jobs("")) == before, "nothing went to the HTCondor pool"
    job_dir = run.job_dir("slurm")
    assert read_text(os.path.join(job_dir, "pylaw_luigi.cfg")).count("[storage:xrd]") == 1
    assert_no_secret(job_dir)
