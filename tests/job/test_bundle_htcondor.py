"""The bundle on the real test HTCondor pool: jobs in the Debian 13 worker userland (Python 3.13),
with the wrapper and the bundle transferred in by HTCondor and logs and outputs transferred back.

The job description is written here by hand (the HTCondor job file factory is another
part of the work); what matters is that nothing but the transferred files and the job
environment of :meth:`remote_job_context` reaches the job.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid

from pylaw.job.files import WRAPPER_NAME, job_environment, wrapper_source
from tests.services._process import require_module

htcondor2 = require_module("htcondor2")


def condor_environment(env: dict[str, str]) -> str:
    """HTCondor's quoted environment syntax (values here have no quotes or spaces)."""
    return " ".join(f"{key}={value}" for key, value in env.items())


def wait_done(pool, cluster: int, count: int, timeout: float = 120.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ads = pool.schedd().history(constraint=f"ClusterId == {cluster}", projection=["ProcId", "ExitCode"])
        if len(ads) == count:
            return sorted(ads, key=lambda ad: ad["ProcId"])
        time.sleep(0.5)
    queue = pool.schedd().query(constraint=f"ClusterId == {cluster}", projection=["JobStatus", "HoldReason"])
    raise AssertionError(f"cluster {cluster} not done after {timeout:g} s: {queue}\n{pool.log_tails()}")


def test_bundle_jobs_run_on_the_pool_python_and_share_the_node_cache(repo, htcondor_pool):
    pool = htcondor_pool
    context = repo.task(workflow="slurm", n=4).remote_job_context(shared_filesystem=False)
    env = job_environment(context)
    cache = f"/tmp/pylaw-bundles-{uuid.uuid4().hex[:8]}"  # node-local, inside the worker userland
    dirs = []
    for proc in range(3):
        job_dir = pool.new_dir(f"bundle{proc}")
        with open(os.path.join(job_dir, WRAPPER_NAME), "w") as f:
            f.write(wrapper_source())
        shutil.copy(context.bundle, job_dir)
        shutil.copy(context.luigi_config, job_dir)  # the submitter's config, as the factory ships it
        dirs.append(job_dir)
    items = [{"dir": d, "branch": str(i)} for i, d in enumerate(dirs)]
    description = {
        "executable": "/bin/bash", "transfer_executable": "false",
        "arguments": " ".join([WRAPPER_NAME, *context.command]),
        "initialdir": "$(dir)", "log": os.path.join(dirs[0], "events.log"),
        "output": "out", "error": "err", "request_memory": "128MB",
        "should_transfer_files": "YES", "when_to_transfer_output": "ON_EXIT",
        "transfer_input_files": ",".join([WRAPPER_NAME, *map(os.path.basename, (context.bundle,
                                                                                 context.luigi_config))]),
        "transfer_output_files": "logs,outputs",
        "environment": '"' + condor_environment({**env, "PYLAW_BRANCHES": "$(branch)", "PYLAW_JOB_KEY": "$(branch)",
                                                 "PYLAW_BUNDLE_CACHE": cache}) + '"',
    }
    cluster = pool.schedd().submit(htcondor2.Submit(description), itemdata=iter(items)).cluster()
    ads = wait_done(pool, cluster, 3)
    outs = [open(os.path.join(d, "out")).read() for d in dirs]  # noqa: SIM115
    assert [ad["ExitCode"] for ad in ads] == [0, 0, 0], outs
    joined = "".join(outs)
    assert joined.count(" unpacked into ") == 1 and joined.count(" reused from ") == 2, joined
    digest = os.path.basename(context.bundle)[13:29]
    for branch, job_dir in enumerate(dirs):
        path = os.path.join(job_dir, "outputs", repo.family, "v1", "n=4", f"sq_{branch}.json")
        with open(path) as f:
            result = json.load(f)
        assert result["square"] == branch**2 and result["version"] == [3, 13]
        assert result["luigi"].startswith(f"{cache}/{digest}/site/") and result["cwd"] != job_dir
        assert os.listdir(os.path.join(job_dir, "logs")) == [f"job{branch}_attempt1_branch{branch}.log"]
    assert pool.run_inside(["test", "-f", f"{cache}/{digest}/.complete"], check=False).returncode == 0
    pool.run_inside(["rm", "-rf", cache], check=False)
