"""End-to-end on a REAL A-REX (tests/services/arc.py): ``--ce`` of type arc, bundle staged in from the
client, outputs on the test suite's real XRootD, jobs run as ``nobody`` by A-REX's fork LRMS.

The submitter is a real ``python -m luigi`` subprocess (killed with SIGKILL in one test) with
an empty HOME: the ARC client state lives in the workflow's job directory only. Duplicates
and leftovers are counted in A-REX's own records: its accounting database (every job it
ever accepted, with its name) and its control directory (the jobs it holds now).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.services.arc import ARCCE, arc_ce  # noqa: F401 - fixture
from tests.services.xrootd import XRootDServer, xrootd_server  # noqa: F401 - fixture
from tests.workflow.htcondor_e2e_helpers import read_json, read_text, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAMILY = "GridSquareARC"


class Run:
    """One test's store, config (two endpoints, the first one dead), storage prefix and submitter."""

    def __init__(self, ce: ARCCE, xrootd: XRootDServer, bundles: str, proxy: str = "") -> None:
        self.ce, self.xrootd = ce, xrootd
        self.dir = tempfile.mkdtemp(prefix="pylaw-arc-run-")
        os.chmod(self.dir, 0o755)  # jobs run as nobody: they create their first-attempt markers here
        self.markers = os.path.join(self.dir, "markers")
        os.mkdir(self.markers)
        os.chmod(self.markers, 0o777)
        self.home = os.path.join(self.dir, "home")
        os.mkdir(self.home)
        self.store = os.path.join(self.dir, "store")
        self.prefix = f"arc-{uuid.uuid4().hex[:8]}"
        self.before = set(ce.accepted_jobs())  # the tests of a module run one after the other
        config = os.path.join(self.dir, "luigi.cfg")
        with open(config, "w") as f:
            f.write(f"[core]\nlog_level = WARNING\n[retcode]\ntask_failed = 3\n"
                    f"[ce:testarc]\ntype = arc\nendpoint = https://localhost:1/arex {ce.url}\nwalltime = 10m\n"
                    f"worker_python = /usr/bin/python3\ncredential_margin = 30m\ngrace = 60s\n"
                    f"[storage:xrd]\nbase = {xrootd.url}/{self.prefix}\ninterface = xrootd\nretries = 1\n"
                    f"[bundle]\ncache_dir = {bundles}\n")
        client = ce.client_env()
        self.env = {**os.environ, "PYTHONPATH": ROOT, "PYLAW_STORE": self.store, "LUIGI_CONFIG_PATH": config,
                    "X509_USER_PROXY": proxy or client["X509_USER_PROXY"], "X509_CERT_DIR": client["X509_CERT_DIR"],
                    "HOME": self.home}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "luigi", "--module", "tests.workflow.grid_tasks", FAMILY, "--version", "v1",
                "--local-scheduler", "--poll-interval", "1", "--marker-dir", self.markers, "--ce", "testarc", *args]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), env=self.env, capture_output=True, text=True, timeout=timeout,
                              cwd=self.dir)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=self.dir)

    def outputs(self, tag: str) -> dict[int, dict]:
        files = glob.glob(self.xrootd.local_path(f"{self.prefix}/grid/{tag}/square_*.json"))
        return {int(os.path.basename(f)[7:-5]): read_json(f) for f in files}

    def job_dir(self, tag: str) -> str:
        (found,) = glob.glob(os.path.join(self.store, FAMILY, "v1", "*", f"tag={tag}", "_pylaw_arc_jobs"))
        return found

    def state(self, tag: str) -> dict:
        return read_json(os.path.join(self.job_dir(tag), "submission.json"))

    def arex_jobs(self) -> dict[str, str]:
        """Every job A-REX accepted for this run: its id -> its name, from A-REX's own records."""
        return {job_id: name for job_id, name in self.ce.accepted_jobs().items()
                if job_id not in self.before and name.startswith(f"pylaw_{FAMILY}_")}


@pytest.fixture(scope="module")
def bundles() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="pylaw-arc-bundles-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def run(arc_ce, xrootd_server, bundles) -> Iterator[Run]:  # noqa: F811
    made = Run(arc_ce, xrootd_server, bundles)
    yield made
    shutil.rmtree(made.dir, ignore_errors=True)


def test_twenty_branches_two_per_job_with_a_flaky_branch(run):
    result = run.run("--n", "20", "--tasks-per-job", "2", "--flaky", "3", "--retries", "1", "--tag", "a")
    assert result.returncode == 0, result.stdout + result.stderr
    done = run.outputs("a")
    assert len(done) == 20, result.stdout + result.stderr
    assert sorted(done) == list(range(20)) and all(done[b]["square"] == b * b for b in done)
    assert {out["uid"] for out in done.values()} == {65534}, "A-REX ran them as nobody"
    for out in done.values():  # pylaw and luigi came in the bundle, staged in from the client
        assert "/site/pylaw/" in out["pylaw"] and "/site/luigi/" in out["luigi"], out
        assert not out["pylaw"].startswith(ROOT) and out["executable"].startswith("/")
    state = run.state("a")
    records = list(state["jobs"].values())
    assert len(records) == 10
    (retried,) = [r for r in records if r["attempt"] == 2]
    assert retried["branches"] == [3] and retried["history"][0]["status"] == "failed"
    assert all(r["backend_data"]["url"] == r["job_id"] and r["backend_data"]["endpoint"] == run.ce.url
               for r in records), "the dead first endpoint was skipped, the job URL kept per job"
    accepted = run.arex_jobs()
    assert len(accepted) == 11, "10 jobs and one resubmission, no more, by A-REX's own records"
    assert {out["arc_job"].rsplit("/", 1)[-1] for out in done.values()} <= set(accepted) | {""}
    job_dir = run.job_dir("a")
    logs = os.listdir(os.path.join(job_dir, "logs"))
    assert len([n for n in logs if "_attempt1_branch" in n]) == 20 and any("_attempt2_branch3" in n for n in logs)
    assert "fails on its first attempt on purpose" in read_text(
        glob.glob(os.path.join(job_dir, "logs", "job*_attempt1_branch3.log"))[0])
    assert not os.path.exists(os.path.join(run.home, ".arc")), "the user's ~/.arc was never touched"
    assert not (set(accepted) & set(run.ce.jobs())), "arcget cleaned every ended job on the CE"


def test_kill_9_then_rerun_reattaches_without_duplicates(run):
    proc = run.popen("--n", "6", "--tasks-per-job", "2", "--sleep", "4", "--tag", "kill")

    def submitted() -> bool:
        try:
            return sum(1 for r in run.state("kill")["jobs"].values() if r["job_id"]) == 3
        except (ValueError, OSError):
            return False

    try:
        wait_for(submitted, timeout=120, what="three submitted ARC jobs")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    before = run.arex_jobs()
    assert len(before) == 3
    result = run.run("--n", "6", "--tasks-per-job", "2", "--sleep", "4", "--tag", "kill")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(run.outputs("kill")) == list(range(6))
    assert run.arex_jobs() == before, "the rerun reattached: A-REX accepted no job twice"


def test_cancel_jobs_leaves_no_job_behind(run):
    result = run.run("--n", "4", "--tasks-per-job", "2", "--sleep", "300", "--tag", "cancel", "--no-poll")
    assert result.returncode == 0, result.stdout + result.stderr
    accepted = run.arex_jobs()
    assert len(accepted) == 2 and set(accepted) <= set(run.ce.jobs())
    cancel = run.run("--n", "4", "--tasks-per-job", "2", "--sleep", "300", "--tag", "cancel", "--cancel-jobs")
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    assert "cancelled 2 jobs" in cancel.stdout
    wait_for(lambda: not (set(accepted) & set(run.ce.jobs())), timeout=60, what="A-REX to drop the killed jobs")
    assert {r["status"] for r in run.state("cancel")["jobs"].values()} == {"cancelled"}
    assert run.outputs("cancel") == {}
    # Not asserted: that the jobs' processes ended. A-REX 6.17's fork LRMS drops a killed job from
    # its records but leaves its processes running; the fixture kills them when it stops.


@pytest.mark.parametrize("kind", ["expired", "short"])
def test_expired_or_too_short_proxy_is_refused_before_anything_is_submitted(arc_ce, xrootd_server,  # noqa: F811
                                                                             bundles, kind):
    proxy = Path(tempfile.mkdtemp(prefix="pylaw-arc-proxy-")) / "proxy.pem"
    now = datetime.now(timezone.utc)
    if kind == "expired":
        arc_ce.ca.proxy(arc_ce.user, proxy, start=now - timedelta(hours=2), end=now - timedelta(minutes=5))
    else:
        arc_ce.ca.proxy(arc_ce.user, proxy, seconds=600)  # the jobs need 10 min walltime + 30 min margin
    run = Run(arc_ce, xrootd_server, bundles, proxy=str(proxy))
    before = set(arc_ce.accepted_jobs())
    result = run.run("--n", "2", "--tag", kind)
    assert result.returncode != 0
    assert str(proxy) in result.stdout + result.stderr
    assert ("expired" if kind == "expired" else "ends in 10 min") in result.stdout + result.stderr
    assert "voms-proxy-init" in result.stdout + result.stderr
    assert set(arc_ce.accepted_jobs()) == before, "nothing reached A-REX"
    assert not glob.glob(os.path.join(run.store, "**", "*.xrsl"), recursive=True), "not even a job file"
    shutil.rmtree(run.dir, ignore_errors=True)
    shutil.rmtree(proxy.parent, ignore_errors=True)
