"""A class with several backend mixins submits through the one --workflow/--ce chose, whatever the mixin order."""

from __future__ import annotations

import luigi
import pytest

import pylaw
from pylaw.job.htcondor import HTCondorJobFileFactory, HTCondorJobManager
from pylaw.job.slurm import SlurmJobFileFactory, SlurmJobManager


class CondorFirst(pylaw.Task, pylaw.LocalWorkflow, pylaw.HTCondorWorkflow, pylaw.SlurmWorkflow):  # type: ignore[misc]
    n = luigi.IntParameter(default=2)

    def create_branch_map(self):
        return list(range(self.n))

    def output(self):
        return self.local_target(f"{self.branch}.txt")


class SlurmFirst(pylaw.Task, pylaw.LocalWorkflow, pylaw.SlurmWorkflow, pylaw.HTCondorWorkflow):  # type: ignore[misc]
    n = luigi.IntParameter(default=2)

    def create_branch_map(self):
        return list(range(self.n))

    def output(self):
        return self.local_target(f"{self.branch}.txt")


BACKENDS = {"slurm": (SlurmJobManager, SlurmJobFileFactory), "htcondor": (HTCondorJobManager, HTCondorJobFileFactory)}


@pytest.mark.parametrize("cls", [CondorFirst, SlurmFirst])
@pytest.mark.parametrize("workflow", ["slurm", "htcondor"])
def test_the_chosen_backend_answers_every_hook(cls, workflow) -> None:
    task = cls(version="v1", workflow=workflow)
    manager_cls, factory_cls = BACKENDS[workflow]
    assert type(task.remote_job_manager()) is manager_cls
    assert type(task.remote_job_file_factory()) is factory_cls
    named, _ = task.remote_job_options()
    assert ("partition" in named) is (workflow == "slurm")  # Slurm's named options only for Slurm
    assert ("PYLAW_STORE" in task.remote_job_env()) is (workflow == "htcondor")  # HTCondor's getenv = false
