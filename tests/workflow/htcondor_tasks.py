"""Tasks that the HTCondor end-to-end tests run in real jobs of the test pool.

Like :mod:`tests.workflow.slurm_tasks`, steered by parameters: ``flaky`` branches fail on
their first attempt, ``broken`` ones always, ``stall`` ones sleep for an hour on their
first attempt (to be held or cancelled), ``sleep`` delays every branch, ``text`` is
written into the output verbatim. Jobs run in the pool's chroot with the worker venv;
outputs record the HTCondor job they were written in.
"""

from __future__ import annotations

import os
import time

import luigi

import pylaw
from pylaw.parameter import CSVParameter
from pylaw.workflow.htcondor import HTCondorWorkflow
from pylaw.workflow.local import LocalWorkflow


def condor_job() -> str:
    """``cluster.proc`` of the HTCondor job this runs in, from the job ad the starter writes ("" outside)."""
    path = os.environ.get("_CONDOR_JOB_AD", "")
    if not path:
        return ""
    with open(path) as f:
        ad = dict(line.split(" = ", 1) for line in f.read().splitlines() if " = " in line)
    return f"{ad['ClusterId']}.{ad['ProcId']}"


def first_attempt(marker_dir: str, name: str) -> bool:
    marker = os.path.join(marker_dir, name)
    if os.path.exists(marker):
        return False
    open(marker, "w").close()
    return True


# the ignores below: LocalWorkflow.workflow_proxy_cls is inferred as type[LocalWorkflowProxy] (invariant)
class Square(pylaw.Task, LocalWorkflow, HTCondorWorkflow):  # type: ignore[misc]
    n = luigi.IntParameter(default=50)
    flaky = CSVParameter(inner=luigi.IntParameter(), significant=False)  # type: ignore[arg-type]
    broken = CSVParameter(inner=luigi.IntParameter(), significant=False)  # type: ignore[arg-type]
    stall = CSVParameter(inner=luigi.IntParameter(), significant=False)  # type: ignore[arg-type]
    marker_dir = luigi.Parameter(default="", significant=False)
    sleep = luigi.FloatParameter(default=0.0, significant=False)
    text = luigi.Parameter(default="", significant=False)

    def create_branch_map(self) -> list[int]:
        return list(range(self.n))

    def output(self):
        return self.local_target(f"square_{self.branch}.json")

    def run(self) -> None:
        if self.branch in self.broken:  # type: ignore[operator]
            raise RuntimeError(f"branch {self.branch} is broken on purpose")
        if self.branch in self.flaky and first_attempt(self.marker_dir, f"flaky_{self.branch}"):  # type: ignore[operator]
            raise RuntimeError(f"branch {self.branch} fails on its first attempt on purpose")
        if self.branch in self.stall and first_attempt(self.marker_dir, f"stall_{self.branch}"):  # type: ignore[operator]
            time.sleep(3600)
        time.sleep(self.sleep)
        self.output().dump({"branch": self.branch, "square": self.branch_data**2, "text": self.text,
                            "pid": os.getpid(), "condor_job": condor_job(), "env": sorted(os.environ)})


class Stage1(pylaw.Task, HTCondorWorkflow):
    n = luigi.IntParameter(default=3)

    def create_branch_map(self) -> list[int]:
        return list(range(self.n))

    def output(self):
        return self.local_target(f"stage1_{self.branch}.json")

    def run(self) -> None:
        self.output().dump({"value": self.branch_data, "condor_job": condor_job()})


class Stage2(pylaw.Task, HTCondorWorkflow):
    """Every branch needs the whole of Stage1: one command runs both workflows on the pool."""

    n = luigi.IntParameter(default=3)

    def create_branch_map(self) -> list[int]:
        return list(range(self.n))

    def workflow_requires(self):
        return self.req(Stage1)

    def requires(self):
        return self.req(Stage1, branch=-1)

    def output(self):
        return self.local_target(f"stage2_{self.branch}.json")

    def run(self) -> None:
        total = sum(t.load()["value"] for t in self.input().values())
        self.output().dump({"value": total + self.branch_data, "condor_job": condor_job()})
