"""Named computing elements: ``[ce:NAME]`` sections, chosen with ``--ce NAME`` at execution time.

A computing element names a place to run and everything that place needs, once, in the
config: its backend type and that backend's settings, plus defaults for every job::

    [ce:rwth]
    type = slurm
    partition = c23ms
    account = rwth1234
    walltime = 2h
    memory = 2G

``pyl Reconstruction --version prod1 --ce rwth`` then runs the workflows that support the
type there, with those settings; ``--local`` (or a ``[ce:...]`` of ``type = local``) keeps
everything on this machine. A misspelled key or type is an error naming the section, so
a typo never silently falls back to a default.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

import luigi

from pylaw.errors import ConfigError, UnknownComputingElementError

SECTION_PREFIX = "ce:"

#: keys every computing element may set, whatever its type
COMMON_KEYS = ("type", "walltime", "memory", "setup_file", "venv", "software", "worker_python", "pilot_queue")

#: the keys each type adds, and the mixin a workflow class needs to run there ("": no backend yet)
BACKENDS: dict[str, tuple[tuple[str, ...], str]] = {
    "local": ((), "pylaw.LocalWorkflow"),
    "slurm": (("partition", "account", "qos", "sbatch_options", "arrays", "command_timeout"), "pylaw.SlurmWorkflow"),
    "htcondor": (("pool", "schedd", "requirements", "request_cpus", "request_memory", "request_disk", "universe",
                  "container_image", "accounting_group", "submit_options", "file_transfer", "max_cluster_size"),
                 "pylaw.HTCondorWorkflow"),
    "arc": (("endpoint", "queue", "runtime_environments", "xrsl_options", "grace", "jobs_per_call", "command_timeout",
             "vo", "credential", "credential_margin", "credential_warn"), "pylaw.ARCWorkflow"),
    "glite": (("endpoint", "vo", "cerequirements", "retrieve_output", "submit_threads", "command_timeout",
               "proxy_margin", "proxy_warning"), "pylaw.GliteWorkflow"),
}


@dataclass(frozen=True)
class ComputingElement:
    """One ``[ce:NAME]`` section: where to run (``type``) and how (``settings``, without ``type``)."""

    name: str
    type: str
    settings: Mapping[str, str]

    def get(self, key: str, default: str = "") -> str:
        return self.settings.get(key, default)



def _sections() -> dict[str, dict[str, str]]:
    parser = luigi.configuration.get_config()
    return {section[len(SECTION_PREFIX):]: dict(parser.items(section))
            for section in parser.sections() if section.startswith(SECTION_PREFIX)}


def configured() -> dict[str, ComputingElement]:
    """Every ``[ce:NAME]`` section of the config, checked (the first malformed one raises)."""
    return {name: _parse(name, items) for name, items in _sections().items()}


def computing_element(name: str) -> ComputingElement:
    """The computing element ``name``, checked; an unknown one is an error listing the configured ones.

    Only this section is checked: a typo in another computing element does not stop this one.
    """
    sections = _sections()
    if name in sections:
        return _parse(name, sections[name])
    close = difflib.get_close_matches(name, sections, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(f"{n} ({items.get('type', '?')})" for n, items in sections.items()) or "none"
    raise UnknownComputingElementError(
        f"unknown computing element --ce {name!r}{hint}; configured: {listed}. Add a [ce:{name}] section "
        f"with 'type = {'|'.join(BACKENDS)}' to luigi.cfg (`pylaw ce list` shows them)")


def _parse(name: str, items: dict[str, str]) -> ComputingElement:
    where = f"[{SECTION_PREFIX}{name}]"
    kind = items.get("type", "").strip()
    if kind not in BACKENDS:
        given = f"type = {kind!r}" if kind else "no type"
        raise ConfigError(f"{where} has {given}; give one of: {', '.join(BACKENDS)}")
    allowed = COMMON_KEYS + BACKENDS[kind][0]
    for key in items:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; a {kind} computing element takes "
                              f"{', '.join(allowed)}")
    return ComputingElement(name, kind, {k: v.strip() for k, v in items.items() if k != "type"})


def missing_backend_hint(kind: str) -> str:
    """What a workflow class needs to run on computing elements of type ``kind``."""
    mixin = BACKENDS.get(kind, ((), ""))[1]
    if mixin:
        return f"add {mixin} to its base classes"
    return f"this pylaw has no {kind} backend yet (only {', '.join(k for k, v in BACKENDS.items() if v[1])})"
