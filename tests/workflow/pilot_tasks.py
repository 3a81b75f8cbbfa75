"""Tasks the pilot tests run: branches of chosen durations, outputs that say where and when they ran.

``sleep`` is every branch's duration, ``slow`` lists branches that take ``slow_sleep``
instead (unequal durations: the case late binding is for). Each output records the pid,
the batch job (Slurm's or HTCondor's), the pilot (``PYLAW_JOB_KEY``.``PYLAW_ATTEMPT``) and
its start and end time.
"""

from __future__ import annotations

import os
import time

import luigi

import pylaw
from pylaw.parameter import CSVParameter
from pylaw.workflow.htcondor import HTCondorWorkflow
from pylaw.workflow.local import LocalWorkflow
from pylaw.workflow.slurm import SlurmWorkflow
from tests.workflow.htcondor_tasks import condor_job


class Uneven(pylaw.Task, LocalWorkflow, SlurmWorkflow, HTCondorWorkflow):  # type: ignore[misc]
    n = luigi.IntParameter(default=20)
    sleep = luigi.FloatParameter(default=0.0, significant=False)
    slow = CSVParameter(inner=luigi.IntParameter(), significant=False)  # type: ignore[arg-type]
    slow_sleep = luigi.FloatParameter(default=0.0, significant=False)

    def create_branch_map(self) -> list[int]:
        return list(range(self.n))

    def output(self):
        return self.local_target(f"out_{self.branch}.json")

    def run(self) -> None:
        start = time.time()
        time.sleep(self.slow_sleep if self.branch in self.slow else self.sleep)  # type: ignore[operator]
        pilot = f"{os.environ.get('PYLAW_JOB_KEY', '')}.{os.environ.get('PYLAW_ATTEMPT', '')}"
        self.output().dump({"branch": self.branch, "pid": os.getpid(), "pilot": pilot, "start": start,
                            "end": time.time(), "slurm_job": os.environ.get("SLURM_JOB_ID", ""),
                            "condor_job": condor_job()})
