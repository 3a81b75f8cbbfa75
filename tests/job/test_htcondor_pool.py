"""The real test HTCondor pool (tests/services/htcondor.py): what the HTCondor backend relies on.

Every fact is read from the pool's own records: the schedd's queue and history, the job
event log the shadow writes, the daemons' config, /proc.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests.services._process import require_module
from tests.services.htcondor import (
    HTCondorPool,
    PoolBusyError,
    kernel_settings,
    mounts_under,
    processes_in,
)
from tests.services.xrootd import xrootd_server  # noqa: F401 - the fixture

htcondor2 = require_module("htcondor2")

CODES = {"a": 0, "b": 0, "c": 3, "d": 0, "e": 0}   # the item of each job -> its exit code
PROBE = """\
import getpass, json, os, sys
try:
    import XRootD.client
    xrootd = XRootD.client.__file__
except ImportError as exc:
    xrootd = f"ImportError: {exc}"
print(json.dumps({"version": list(sys.version_info[:2]), "prefix": sys.prefix, "user": getpass.getuser(),
                  "host_prefix_seen": os.path.exists(sys.argv[1]), "xrootd": xrootd}))
"""


@pytest.fixture
def pool(htcondor_pool):
    return htcondor_pool


def submit(pool: HTCondorPool, job_dir: str, description: dict[str, str], **kwargs):
    """Submit from ``job_dir`` (relative paths resolve there); the event log is ``events.log``."""
    defaults = {"initialdir": job_dir, "log": os.path.join(job_dir, "events.log"), "output": "out.$(ProcId)",
                "error": "err.$(ProcId)", "transfer_executable": "false", "should_transfer_files": "NO",
                "request_memory": "64MB"}
    return pool.schedd().submit(htcondor2.Submit({**defaults, **description}), **kwargs)


def events(log: str, until, timeout: float = 60.0) -> list:
    """Events of the job event log, read as they come, until ``until(events)`` holds."""
    seen: list = []
    deadline = time.monotonic() + timeout
    with htcondor2.JobEventLog(log) as reader:
        while not until(seen):
            assert time.monotonic() < deadline, f"timed out; events so far: {[str(e.type) for e in seen]}"
            for event in reader.events(stop_after=1):   # blocks up to 1 s for the next event
                seen.append(event)
                if until(seen):
                    break
    return seen


def history(pool: HTCondorPool, cluster: int, count: int, timeout: float = 30.0) -> list:
    """The schedd's history ads of ``cluster`` once all ``count`` jobs are recorded there."""
    deadline = time.monotonic() + timeout
    while True:
        ads = pool.schedd().history(constraint=f"ClusterId == {cluster}",
                                    projection=["ProcId", "ExitCode", "JobStatus", "Owner", "Args"])
        if len(ads) == count or time.monotonic() > deadline:
            return ads
        time.sleep(0.3)


def job_status(pool: HTCondorPool, cluster: int) -> list[int]:
    return [ad["JobStatus"] for ad in pool.schedd().query(constraint=f"ClusterId == {cluster}",
                                                          projection=["JobStatus"])]


def wait_status(pool: HTCondorPool, cluster: int, wanted: set[int], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (status := job_status(pool, cluster)) and not set(status) <= wanted:
        assert time.monotonic() < deadline, f"job status {status}, wanted {wanted}"
        time.sleep(0.2)
    return status


def test_pool_daemons_run_in_the_chroot(pool):
    assert pool.master is not None and pool.master.poll() is None
    assert pool.master.pid in processes_in(pool.root)
    assert os.readlink(f"/proc/{pool.master.pid}/root") == pool.root
    ads = htcondor2.Collector().query(htcondor2.AdTypes.Startd, projection=["Name", "TotalCpus"])
    assert ads and ads[0]["TotalCpus"] == pool.cpus
    mounts = mounts_under(pool.root)
    assert pool.root in mounts and pool.root + pool.shared_dir in mounts and pool.root + "/proc" in mounts
    # the daemons' own config: kernel tuning off before the first start (it would retune the host)
    assert pool.run_inside(["condor_config_val", "ENABLE_KERNEL_TUNING"]).stdout.strip() == "False"


def test_cluster_with_itemdata_completes_with_exit_codes(pool):
    job_dir = pool.new_dir("items")
    script = os.path.join(job_dir, "run.sh")
    with open(script, "w") as f:
        f.write('#!/bin/sh\necho "item $1 as $(id -un)"\nexit "$2"\n')
    os.chmod(script, 0o755)
    items = [{"item": item, "code": str(code)} for item, code in CODES.items()]
    result = submit(pool, job_dir, {"executable": script, "arguments": "$(item) $(code)"}, itemdata=iter(items))
    cluster = result.cluster()
    assert result.num_procs() == 5

    log = os.path.join(job_dir, "events.log")
    seen = events(log, lambda seen: sum(e.type == htcondor2.JobEventType.JOB_TERMINATED for e in seen) == 5)
    terminated = {e.proc: e["ReturnValue"] for e in seen if e.type == htcondor2.JobEventType.JOB_TERMINATED}
    assert {e.cluster for e in seen} == {cluster}
    assert terminated == {proc: code for proc, code in enumerate(CODES.values())}

    ads = history(pool, cluster, 5)
    assert sorted((ad["ProcId"], ad["ExitCode"], ad["JobStatus"]) for ad in ads) == [
        (proc, code, 4) for proc, code in enumerate(CODES.values())]
    assert {ad["Owner"] for ad in ads} == {"condoruser"}
    for proc, item in enumerate(CODES):
        with open(os.path.join(job_dir, f"out.{proc}")) as f:
            assert f.read() == f"item {item} as condoruser\n"


def test_jobs_run_in_the_chroot_userland(pool):
    job_dir = pool.new_dir("probe")
    with open(os.path.join(job_dir, "probe.py"), "w") as f:
        f.write(PROBE)
    cluster = submit(pool, job_dir, {"executable": "/usr/bin/python3", "arguments": f"probe.py {sys.prefix}"}).cluster()
    events(os.path.join(job_dir, "events.log"),
           lambda seen: any(e.type == htcondor2.JobEventType.JOB_TERMINATED for e in seen))
    with open(os.path.join(job_dir, "out.0")) as f:
        facts = json.load(f)
    assert facts["user"] == "condoruser"
    assert not facts["host_prefix_seen"], f"the job sees the submitter's venv {sys.prefix}"
    assert facts["prefix"] != sys.prefix and tuple(facts["version"]) != sys.version_info[:2]
    assert facts["xrootd"].startswith("/usr/lib/python3/dist-packages/XRootD/"), facts["xrootd"]
    assert history(pool, cluster, 1)[0]["ExitCode"] == 0


WRITE_XROOTD = """\
import sys
from XRootD import client
from XRootD.client.flags import OpenFlags
f = client.File()
status, _ = f.open(sys.argv[1], OpenFlags.NEW | OpenFlags.MAKEPATH)
assert status.ok, status.message
status, _ = f.write(sys.argv[2].encode())
assert status.ok, status.message
f.close()
"""


def test_a_job_writes_to_the_test_xrootd(pool, xrootd_server):  # noqa: F811
    """Outputs go to the suite's real XRootD server, from the worker userland's client."""
    job_dir = pool.new_dir("xrootd")
    with open(os.path.join(job_dir, "write.py"), "w") as f:
        f.write(WRITE_XROOTD)
    url = f"{xrootd_server.url}/pool/{os.path.basename(job_dir)}/out.txt"
    cluster = submit(pool, job_dir, {"executable": "/usr/bin/python3", "arguments": f"write.py {url} from-a-job"}
                     ).cluster()
    events(os.path.join(job_dir, "events.log"),
           lambda seen: any(e.type == htcondor2.JobEventType.JOB_TERMINATED for e in seen))
    assert history(pool, cluster, 1)[0]["ExitCode"] == 0, Path(job_dir, "err.0").read_text()
    with open(xrootd_server.local_path(f"pool/{os.path.basename(job_dir)}/out.txt")) as f:
        assert f.read() == "from-a-job"


def test_run_inside_uses_the_worker_userland(pool):
    script = "import XRootD.client, os, sys; print(os.getuid(), sys.prefix)"
    result = pool.run_inside(["python3", "-c", script])
    assert result.stdout.split() == ["4242", "/usr"]


def test_hold_release_and_remove(pool):
    job_dir = pool.new_dir("hold")
    cluster = submit(pool, job_dir, {"executable": "/bin/sleep", "arguments": "300"}).cluster()
    schedd = pool.schedd()
    # pitfall 9: htcondor2 drops a plain string reason; a (text, code) tuple reaches the schedd
    schedd.act(htcondor2.JobAction.Hold, f"ClusterId == {cluster}", reason=("pylaw test hold", 7))
    ad = schedd.query(constraint=f"ClusterId == {cluster}",
                      projection=["JobStatus", "HoldReason", "HoldReasonSubCode"])[0]
    assert ad["JobStatus"] == 5 and ad["HoldReasonSubCode"] == 7
    assert ad["HoldReason"] == "pylaw test hold (by user condoruser)"
    schedd.act(htcondor2.JobAction.Release, f"ClusterId == {cluster}")
    assert set(wait_status(pool, cluster, {1, 2})) <= {1, 2}
    schedd.act(htcondor2.JobAction.Remove, f"ClusterId == {cluster}", reason=("pylaw test remove", 0))
    assert wait_status(pool, cluster, set()) == []   # gone from the queue
    assert history(pool, cluster, 1)[0]["JobStatus"] == 3   # removed
    types = [e.type for e in events(os.path.join(job_dir, "events.log"),
                                    lambda seen: any(e.type == htcondor2.JobEventType.JOB_ABORTED for e in seen))]
    assert htcondor2.JobEventType.JOB_HELD in types and htcondor2.JobEventType.JOB_RELEASED in types


def test_a_second_pool_waits_for_the_lock_then_fails(pool):
    second = HTCondorPool(lock_timeout=0.5)
    with pytest.raises(PoolBusyError, match=f"in use by PID {os.getpid()}"):
        second.start()
    second.stop()   # holds no lock: must leave the running pool alone
    assert pool.master.poll() is None
    assert pool.schedd().query(constraint="false") == []


def test_host_kernel_settings_unchanged(pool):
    """Pitfall 1: with kernel tuning on, the master retunes the host through the bind-mounted /proc."""
    assert pool.kernel_before and kernel_settings() == pool.kernel_before
