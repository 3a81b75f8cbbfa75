"""SlurmWorkflow: run a workflow's branches as Slurm jobs (``--workflow slurm``).

Options come from the task (class attributes ``slurm_partition``, ``slurm_account``,
``slurm_qos``, or overriding :meth:`SlurmWorkflow.slurm_options`) or else from the
``[slurm]`` section of the config file, which Luigi also fills from the command line
(``--slurm-partition short``)::

    [slurm]
    partition = short
    account = cms
    qos = normal
    sbatch_options = --mem=2G --cpus-per-task=1
    arrays = true
"""

from __future__ import annotations

import shlex
from typing import ClassVar

import luigi

from pylaw.job.base import JobFileFactory, JobManager
from pylaw.job.command import CommandRunner
from pylaw.job.slurm import SlurmJobFileFactory, SlurmJobManager
from pylaw.workflow.base import WorkflowProxy
from pylaw.workflow.remote import BaseRemoteWorkflow, RemoteWorkflowProxy


class slurm(luigi.Config):  # noqa: N801 - the class name is the config section name
    """The ``[slurm]`` config section."""

    partition = luigi.Parameter(default="", description="partition of every job (sbatch --partition)")
    account = luigi.Parameter(default="", description="account charged (sbatch --account)")
    qos = luigi.Parameter(default="", description="quality of service (sbatch --qos)")
    sbatch_options = luigi.Parameter(default="", description="more sbatch options, split like a shell would")
    arrays = luigi.BoolParameter(
        default=True, parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="submit many jobs per sbatch call as job arrays (false: one sbatch per job)")
    command_timeout = luigi.FloatParameter(default=120.0, description="seconds before a Slurm call is killed")


class SlurmWorkflowProxy(RemoteWorkflowProxy):
    """The remote proxy, for Slurm (everything Slurm-specific is in the job manager and factory)."""


class SlurmWorkflow(BaseRemoteWorkflow):
    """Run the branches on Slurm: ``--workflow slurm``."""

    workflow_type: ClassVar[str | None] = "slurm"
    workflow_proxy_cls: ClassVar[type[WorkflowProxy]] = SlurmWorkflowProxy

    #: task-level defaults that win over the [slurm] section (not parameters: the [slurm]
    #: config already owns --slurm-partition & co. on the command line)
    slurm_partition: ClassVar[str] = ""
    slurm_account: ClassVar[str] = ""
    slurm_qos: ClassVar[str] = ""

    def remote_job_manager(self) -> JobManager:
        config = slurm()
        return SlurmJobManager(CommandRunner(timeout=config.command_timeout), arrays=config.arrays)

    def remote_job_file_factory(self) -> JobFileFactory:
        return SlurmJobFileFactory()

    def remote_job_options(self) -> tuple[dict[str, str], list[str]]:
        config = slurm()
        named = {"partition": self.slurm_partition or config.partition,
                 "account": self.slurm_account or config.account,
                 "qos": self.slurm_qos or config.qos}
        return named, self.slurm_options()

    def slurm_options(self) -> list[str]:
        """Extra sbatch options (one per list item); default: ``[slurm] sbatch_options``."""
        return shlex.split(slurm().sbatch_options)
