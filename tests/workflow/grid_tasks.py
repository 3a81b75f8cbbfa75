"""Tasks that the grid end-to-end tests run in jobs without a shared file system.

Branch outputs are files on the ``[storage:xrd]`` storage element (the test suite's real
XRootD), the only place a job without a shared file system can leave results. Each
output records where the job imported pylaw and luigi from and which Python ran it, so a
test can tell that the code came in the bundle. ``flaky`` branches fail on their first
attempt (a marker file in ``marker_dir``, which jobs must be able to see).
"""

from __future__ import annotations

import os
import sys
import time

import luigi

import pylaw
from pylaw.parameter import CSVParameter
from pylaw.target.remote import RemoteFileTarget
from pylaw.workflow.arc import ARCWorkflow
from pylaw.workflow.htcondor import HTCondorWorkflow
from pylaw.workflow.local import LocalWorkflow
from pylaw.workflow.slurm import SlurmWorkflow
from tests.workflow.htcondor_tasks import condor_job, first_attempt


class GridBody:
    """Parameters and branches of the grid workflows (one class per backend, see below)."""

    n = luigi.IntParameter(default=50)
    tag = luigi.Parameter(default="a")
    flaky = CSVParameter(inner=luigi.IntParameter(), significant=False)  # type: ignore[arg-type]
    marker_dir = luigi.Parameter(default="", significant=False)
    sleep = luigi.FloatParameter(default=0.0, significant=False)

    def create_branch_map(self) -> list[int]:
        return list(range(self.n))  # type: ignore[call-overload]

    def output(self):
        return RemoteFileTarget(f"grid/{self.tag}/square_{self.branch}.json", fs="xrd")

    def run(self) -> None:
        if self.branch in self.flaky and first_attempt(self.marker_dir, f"flaky_{self.branch}"):  # type: ignore[operator]
            raise RuntimeError(f"branch {self.branch} fails on its first attempt on purpose")
        time.sleep(self.sleep)
        self.output().dump({
            "branch": self.branch, "square": self.branch_data**2, "tag": self.tag,
            "python": list(sys.version_info[:2]), "executable": sys.executable,
            "pylaw": os.path.realpath(pylaw.__file__), "luigi": os.path.realpath(luigi.__file__),
            "condor_job": condor_job(), "slurm_job": os.environ.get("SLURM_JOB_ID", ""), "cwd": os.getcwd(),
            "arc_job": os.environ.get("GRID_GLOBAL_JOBID", ""), "uid": os.getuid()})


# One class per remote backend: a class with both mixins submits through the first one's
# job manager whatever --ce chose (remote_job_manager resolves by the MRO), see the report.
# The ignores below: LocalWorkflow.workflow_proxy_cls is inferred as type[LocalWorkflowProxy] (invariant)
class GridSquare(GridBody, pylaw.Task, LocalWorkflow, HTCondorWorkflow):  # type: ignore[misc]
    pass


class GridSquareSlurm(GridBody, pylaw.Task, LocalWorkflow, SlurmWorkflow):  # type: ignore[misc]
    pass


class GridSquareARC(GridBody, pylaw.Task, LocalWorkflow, ARCWorkflow):  # type: ignore[misc]
    pass
