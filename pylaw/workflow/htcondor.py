"""HTCondorWorkflow: run a workflow's branches as HTCondor jobs (``--workflow htcondor``).

Settings come from the ``[htcondor]`` section (Luigi also fills it from the command line,
``--htcondor-request-memory 2G``), overridden key by key by a ``[ce:NAME]`` section of
``type = htcondor`` when the workflow runs with ``--ce NAME``::

    [htcondor]
    pool = collector.example.org:9618
    schedd = submit01.example.org
    requirements = OpSysAndVer == "AlmaLinux9"
    request_memory = 2G
    submit_options =
        +MaxRuntime = 7200
        +JobFlavour = "longlunch"
    file_transfer = false
"""

from __future__ import annotations

from typing import ClassVar

import luigi

from pylaw.config import STORE_ENV, store_root
from pylaw.errors import ConfigError, JobFileError
from pylaw.job.base import JobFileFactory, JobManager
from pylaw.job.htcondor import HTCondorJobFileFactory, HTCondorJobManager, HTCondorSettings, parse_submit_options
from pylaw.workflow.base import WorkflowProxy
from pylaw.workflow.remote import BaseRemoteWorkflow, RemoteWorkflowProxy, own_type_hook

#: the keys of [htcondor] that a [ce:NAME] of type htcondor may override (pylaw.ce.BACKENDS lists them too)
KEYS = ("pool", "schedd", "requirements", "request_cpus", "request_memory", "request_disk", "universe",
        "container_image", "accounting_group", "submit_options", "file_transfer", "max_cluster_size")


class htcondor(luigi.Config):  # noqa: N801 - the class name is the config section name
    """The ``[htcondor]`` config section."""

    pool = luigi.Parameter(default="", description="collector (host[:port]); empty: the configured one")
    schedd = luigi.Parameter(default="", description="schedd name; empty: the pool's (local) schedd")
    requirements = luigi.Parameter(default="", description="ClassAd requirements expression of every job")
    request_cpus = luigi.Parameter(default="1", description="CPUs per job")
    request_memory = luigi.Parameter(default="", description="memory per job (2G, 2048 = MiB)")
    request_disk = luigi.Parameter(default="", description="scratch disk per job (1G)")
    universe = luigi.Parameter(default="vanilla", description="vanilla, or container (with container_image)")
    container_image = luigi.Parameter(default="", description="image of the container universe")
    accounting_group = luigi.Parameter(default="", description="accounting group charged")
    submit_options = luigi.Parameter(
        default="", description="more submit commands or +Attributes, one 'name = value' per line")
    file_transfer = luigi.BoolParameter(
        default=False, parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="ship the job files by HTCondor's file transfer (workers without a shared file system)")
    max_cluster_size = luigi.IntParameter(default=1000, description="jobs per cluster (one submit call each)")


class HTCondorWorkflowProxy(RemoteWorkflowProxy):
    """The remote proxy, for HTCondor (everything HTCondor-specific is in the job manager and factory)."""


class HTCondorWorkflow(BaseRemoteWorkflow):
    """Run the branches on HTCondor: ``--workflow htcondor``, or ``--ce NAME`` of ``type = htcondor``."""

    workflow_type: ClassVar[str | None] = "htcondor"
    workflow_proxy_cls: ClassVar[type[WorkflowProxy]] = HTCondorWorkflowProxy

    def htcondor_settings(self) -> HTCondorSettings:
        """``[htcondor]``, overridden by the computing element's keys; its ``memory`` is ``request_memory``."""
        config, element = htcondor(), self.computing_element()
        values = {key: getattr(config, key) for key in KEYS}
        where = "[htcondor]"
        if element is not None:
            where = f"[ce:{element.name}]"
            if element.get("memory"):
                values["request_memory"] = element.get("memory")
            values.update({key: element.get(key) for key in KEYS if element.get(key)})
        try:
            settings = HTCondorSettings(
                **{key: str(values[key]).strip() for key in KEYS[:9]},
                submit_options=parse_submit_options(str(values["submit_options"])),
                file_transfer=values["file_transfer"] if isinstance(values["file_transfer"], bool)
                else luigi.BoolParameter().parse(values["file_transfer"]),
                max_cluster_size=int(values["max_cluster_size"]))
            settings.check()
        except (ValueError, JobFileError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return settings

    @own_type_hook
    def remote_job_env(self) -> dict[str, str]:
        """With a shared file system, jobs write into this store (HTCondor jobs get no environment of
        the submitter: ``getenv = false``); without one, outputs go to remote targets."""
        env = dict(super().remote_job_env())
        if not self.htcondor_settings().file_transfer:
            env.setdefault(STORE_ENV, store_root())
        return env

    @own_type_hook
    def remote_job_manager(self) -> JobManager:
        return HTCondorJobManager(self.remote_job_dir(), self.htcondor_settings())

    @own_type_hook
    def remote_job_file_factory(self) -> JobFileFactory:
        return HTCondorJobFileFactory(self.htcondor_settings())
