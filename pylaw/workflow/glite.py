"""GliteWorkflow: run a workflow's branches on a CREAM CE (``--workflow glite``; legacy, see docs/cream.rst).

Settings come from the ``[glite]`` section, overridden key by key by a ``[ce:NAME]`` of
``type = glite`` when the workflow runs with ``--ce NAME``::

    [glite]
    endpoint = cream.example.org:8443/cream-pbs-cms
    vo = cms
    proxy_margin = 1h

A CREAM CE shares no file system with the submit host: jobs get the code as a bundle
(``software = auto`` means bundle here) and write their outputs to a storage element.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

import luigi

from pylaw.errors import ConfigError, JobFileError
from pylaw.job.base import JobFileFactory, JobManager
from pylaw.job.glite import GliteJobFileFactory, GliteJobManager, GliteSettings
from pylaw.parameter import BytesParameter, DurationParameter
from pylaw.workflow.base import WorkflowProxy
from pylaw.workflow.remote import BaseRemoteWorkflow, RemoteWorkflowProxy, own_type_hook

#: the keys of [glite] that a [ce:NAME] of type glite may override (pylaw.ce.BACKENDS lists them too)
KEYS = ("endpoint", "vo", "cerequirements", "retrieve_output", "submit_threads", "command_timeout",
        "proxy_margin", "proxy_warning")


#: how the values of a [ce:NAME] section (strings) become typed settings
PARSE: dict[str, Callable[[str], Any]] = {
    "retrieve_output": luigi.BoolParameter(parsing=luigi.BoolParameter.EXPLICIT_PARSING).parse,
    "submit_threads": int, "command_timeout": DurationParameter().parse,
    "proxy_margin": DurationParameter().parse, "proxy_warning": DurationParameter().parse}


class glite(luigi.Config):  # noqa: N801 - the class name is the config section name
    """The ``[glite]`` config section."""

    endpoint = luigi.Parameter(default="", description="the CREAM CE id: host[:port]/queue "
                                                       "(e.g. ce.example.org:8443/cream-pbs-cms)")
    vo = luigi.Parameter(default="", description="VirtualOrganisation of the jobs; the proxy must carry it")
    memory = luigi.Parameter(default="", description="memory per job (2GiB), as a CERequirements on the RAM")
    cerequirements = luigi.Parameter(default="", description="more CERequirements (a ClassAd expression)")
    retrieve_output = luigi.BoolParameter(
        default=True, parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="fetch the output sandbox (job logs) of ended jobs")
    submit_threads = luigi.IntParameter(default=4, description="glite-ce-job-submit calls in flight at once")
    command_timeout = DurationParameter(default="120s", description="time limit of one glite-ce-* call")
    proxy_margin = DurationParameter(default="1h", description="the proxy must outlive the walltime by this "
                                                               "at every submission")
    proxy_warning = DurationParameter(default="2h", description="warn while polling below this proxy lifetime")


class GliteWorkflowProxy(RemoteWorkflowProxy):
    """The remote proxy, for CREAM (everything CREAM-specific is in the job manager and factory)."""


class GliteWorkflow(BaseRemoteWorkflow):
    """Run the branches on a CREAM CE: ``--workflow glite``, or ``--ce NAME`` of ``type = glite``."""

    workflow_type: ClassVar[str | None] = "glite"
    workflow_proxy_cls: ClassVar[type[WorkflowProxy]] = GliteWorkflowProxy

    def glite_settings(self) -> GliteSettings:
        """``[glite]``, overridden by the computing element's keys (its ``memory`` too)."""
        config, element = glite(), self.computing_element()
        values: dict[str, Any] = {key: getattr(config, key) for key in (*KEYS, "memory")}
        where = "[glite]"
        if element is not None:
            where = f"[ce:{element.name}]"
            values.update({key: element.get(key) for key in (*KEYS, "memory") if element.get(key)})
        try:
            typed = {key: PARSE[key](value) if isinstance(value, str) and key in PARSE else value
                     for key, value in values.items()}
            memory = BytesParameter().parse(typed["memory"]) // 2**20 if typed["memory"] else 0
            settings = GliteSettings(
                endpoint=str(typed["endpoint"]).strip(), vo=str(typed["vo"]).strip(), memory_mb=memory,
                cerequirements=str(typed["cerequirements"]).strip(), retrieve_output=bool(typed["retrieve_output"]),
                submit_threads=int(typed["submit_threads"]), command_timeout=float(typed["command_timeout"]),
                min_lifetime=self.remote_walltime() + float(typed["proxy_margin"]),
                warn_below=float(typed["proxy_warning"]))
            settings.check()
        except (ValueError, JobFileError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return settings

    def glite_delegation(self) -> str:
        """The delegation the submission state records last (a rerun reuses it; the CE may have dropped it)."""
        target = self.remote_state_target()
        if not target.exists():
            return ""
        try:
            with target.open("r") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return ""  # an unreadable state is reported by the poller, with what to do
        records = [*(r for past in data.get("past", []) for r in past.get("jobs", {}).values()),
                   *data.get("jobs", {}).values()]
        found = [r.get("backend_data", {}).get("delegation", "") for r in records]
        return next((d for d in reversed(found) if d), "")

    @own_type_hook
    def remote_job_manager(self) -> JobManager:
        return GliteJobManager(self.remote_job_dir(), self.glite_settings(), delegation=self.glite_delegation())

    @own_type_hook
    def remote_job_file_factory(self) -> JobFileFactory:
        return GliteJobFileFactory(self.glite_settings())
