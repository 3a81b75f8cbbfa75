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

from pylaw.errors import ConfigError
from pylaw.job.base import JobFileFactory, JobManager
from pylaw.job.command import CommandRunner
from pylaw.job.slurm import SlurmJobFileFactory, SlurmJobManager
from pylaw.workflow.base import WorkflowProxy
from pylaw.workflow.remote import BaseRemoteWorkflow, RemoteWorkflowProxy, own_type_hook


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

    @own_type_hook
    def remote_job_manager(self) -> JobManager:
        config, element = slurm(), self.computing_element()
        timeout, arrays = config.command_timeout, config.arrays
        if element is not None:
            try:
                timeout = float(element.get("command_timeout") or timeout)
                arrays = luigi.BoolParameter().parse(element.get("arrays") or str(arrays))
            except ValueError as exc:
                raise ConfigError(f"[ce:{element.name}]: {exc}") from None
        return SlurmJobManager(CommandRunner(timeout=timeout), arrays=arrays)

    @own_type_hook
    def remote_job_file_factory(self) -> JobFileFactory:
        return SlurmJobFileFactory()

    @own_type_hook
    def remote_job_options(self) -> tuple[dict[str, str], list[str]]:
        """Named sbatch options: the computing element's (``--ce``), else the task's, else ``[slurm]``."""
        config, element = slurm(), self.computing_element()

        def pick(key: str, own: str) -> str:
            return (element.get(key) if element is not None else "") or own or getattr(config, key)

        named = {"partition": pick("partition", self.slurm_partition), "account": pick("account", self.slurm_account),
                 "qos": pick("qos", self.slurm_qos)}
        extra = self.slurm_options()
        if element is not None and element.get("memory"):
            extra = [f"--mem={element.get('memory')}", *extra]
        return named, extra

    def slurm_options(self) -> list[str]:
        """Extra sbatch options (one per list item); default: the computing element's ``sbatch_options``,
        else ``[slurm] sbatch_options``."""
        element = self.computing_element()
        text = element.get("sbatch_options") if element is not None and element.get("sbatch_options") else None
        return shlex.split(slurm().sbatch_options if text is None else text)
