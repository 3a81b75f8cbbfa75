"""ARCWorkflow: run a workflow's branches as jobs on ARC CEs (``--workflow arc``).

Settings come from the ``[arc]`` section, overridden key by key by a ``[ce:NAME]`` section
of ``type = arc`` when the workflow runs with ``--ce NAME``::

    [ce:desy-arc]
    type = arc
    endpoint = https://grid-arcce0.desy.de:443/arex https://grid-arcce1.desy.de:443/arex
    queue = grid
    vo = cms
    walltime = 4h
    memory = 2G

ARC jobs never share a file system with the submitter: the code goes in a bundle, the
outputs to a storage element. Before anything is submitted the grid credential is
checked (:func:`~pylaw.job.credentials.require_credentials`): it must outlive the jobs'
walltime plus ``credential_margin``, and carry ``vo`` when one is given; while the jobs
are polled a :class:`~pylaw.job.credentials.CredentialWatch` warns when it runs low.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

import luigi

from pylaw.errors import ConfigError, JobFileError
from pylaw.job.arc import ARCJobFileFactory, ARCJobManager, ARCSettings, parse_xrsl_options
from pylaw.job.base import JobFileFactory, JobManager, JobState
from pylaw.job.credentials import CredentialWatch, require_credentials
from pylaw.parameter import DurationParameter
from pylaw.workflow.base import WorkflowProxy
from pylaw.workflow.remote import BaseRemoteWorkflow, RemoteWorkflowProxy, own_type_hook

#: keys of [arc] that a [ce:NAME] of type arc may set (pylaw.ce.BACKENDS lists them too)
KEYS = ("endpoint", "queue", "runtime_environments", "xrsl_options", "grace", "jobs_per_call", "command_timeout",
        "vo", "credential", "credential_margin", "credential_warn")
UNITS = {"": 1, "M": 1, "MB": 1, "MI": 1, "MIB": 1, "G": 1024, "GB": 1024, "GI": 1024, "GIB": 1024,
         "T": 1024 * 1024, "TB": 1024 * 1024}


class arc(luigi.Config):  # noqa: N801 - the class name is the config section name
    """The ``[arc]`` config section."""

    endpoint = luigi.Parameter(default="", description="ARC CE endpoint URL(s), tried in order "
                                                       "(https://host:443/arex), separated by spaces")
    queue = luigi.Parameter(default="", description="the CE's queue; empty: its default")
    runtime_environments = luigi.Parameter(default="", description="runtime environments every job needs")
    xrsl_options = luigi.Parameter(default="", description="more xRSL relations, one 'name = value' per line")
    grace = DurationParameter(default="3m", description="how long a just-submitted job may be missing "
                                                          "from arcstat before it counts as lost")
    jobs_per_call = luigi.IntParameter(default=100, description="job descriptions per arcsub call")
    command_timeout = DurationParameter(default="10m", description="time limit of one ARC client call")
    vo = luigi.Parameter(default="", description="VO the proxy's VOMS attributes must name; empty: not checked")
    credential = luigi.ChoiceParameter(default="x509", choices=["x509", "token"],
                                       description="the credential jobs are submitted with")
    credential_margin = DurationParameter(default="1h", description="lifetime the credential must have beyond "
                                                                    "the jobs' walltime")
    credential_warn = DurationParameter(default="2h", description="warn while polling once the credential has "
                                                                  "less left")


class ARCWorkflowProxy(RemoteWorkflowProxy):
    """The remote proxy, for ARC (everything ARC-specific is in the job manager and factory)."""


class WatchedARCJobManager(ARCJobManager):
    """An :class:`ARCJobManager` that asks a :class:`CredentialWatch` at every status query."""

    def __init__(self, job_dir: str, settings: ARCSettings, watch: CredentialWatch | None) -> None:
        super().__init__(job_dir, settings)
        self.watch = watch

    def query(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        if self.watch is not None:
            self.watch.check()  # logs a warning once per threshold
        return super().query(job_ids)


class ARCWorkflow(BaseRemoteWorkflow):
    """Run the branches on an ARC CE: ``--workflow arc``, or ``--ce NAME`` of ``type = arc``."""

    workflow_type: ClassVar[str | None] = "arc"
    workflow_proxy_cls: ClassVar[type[WorkflowProxy]] = ARCWorkflowProxy

    def arc_values(self) -> tuple[dict[str, str], str]:
        """The effective ``[arc]`` values (computing element first) and where they come from."""
        config, element = arc(), self.computing_element()
        values = {key: str(getattr(config, key)) for key in KEYS}
        if element is None:
            return values, "[arc]"
        values.update({key: element.get(key) for key in KEYS if element.get(key)})
        if element.get("memory"):
            values["memory"] = element.get("memory")
        return values, f"[ce:{element.name}]"

    def arc_settings(self) -> ARCSettings:
        values, where = self.arc_values()
        try:
            settings = ARCSettings(
                endpoints=tuple(re.split(r"[\s,]+", values["endpoint"].strip())) if values["endpoint"].strip()
                else (), queue=values["queue"].strip(), memory=megabytes(values.get("memory", "")),
                runtime_environments=tuple(values["runtime_environments"].split()),
                xrsl_options=parse_xrsl_options(values["xrsl_options"]),
                grace=float(DurationParameter().parse(values["grace"])), jobs_per_call=int(values["jobs_per_call"]),
                command_timeout=float(DurationParameter().parse(values["command_timeout"])))
            settings.check()
        except (ValueError, JobFileError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return settings

    def arc_credential_watch(self) -> CredentialWatch:
        """The credential, checked before anything reaches the CE; a watch for the poll loop.

        Submitting needs walltime + margin; cancelling and cleaning up only a valid credential.
        """
        values, where = self.arc_values()
        try:
            margin = float(DurationParameter().parse(values["credential_margin"]))
            warn = float(DurationParameter().parse(values["credential_warn"]))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        needed = 60.0 if (self.cancel_jobs or self.cleanup_jobs) else self.remote_walltime() + margin
        info = require_credentials(needed, vo=values["vo"].strip(), kind=values["credential"].strip())
        job_list = f"{self.remote_job_dir()}/arc_jobs.dat"
        return CredentialWatch(info, warn, note=f"jobs already submitted keep the copy delegated to the CE: "
                                                f"renew it there with `arcrenew -j {job_list} -a`")

    @own_type_hook
    def remote_job_manager(self) -> JobManager:
        settings = self.arc_settings()  # config errors before credential errors
        return WatchedARCJobManager(self.remote_job_dir(), settings, self.arc_credential_watch())

    @own_type_hook
    def remote_job_file_factory(self) -> JobFileFactory:
        return ARCJobFileFactory(self.arc_settings())


def megabytes(text: str) -> int:
    """``2G``, ``2048``, ``500M`` -> MB (what xRSL's ``memory`` takes); empty -> 0."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text or "0")
    unit = match.group(2).upper() if match else "?"
    if not match or unit not in UNITS:
        raise ValueError(f"memory {text!r} is not a number with an optional unit (2G, 2048 = MB)")
    return int(float(match.group(1)) * UNITS[unit])
