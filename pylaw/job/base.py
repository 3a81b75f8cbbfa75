"""Contracts between remote workflows and batch systems: job managers and job file factories.

A remote workflow (:mod:`pylaw.workflow.remote`) knows nothing about any batch system. It
groups branches into :class:`JobRequest` objects, asks a :class:`JobFileFactory` to
render them into :class:`JobBatch` files, and a :class:`JobManager` to submit, query,
cancel and clean up those jobs, always many at a time. A backend (Slurm, later HTCondor,
ARC) implements the two abstract classes and states what it can do in
:class:`Capabilities`. Job managers never import task code: they see files and ids.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from pylaw.job.command import CommandRunner


class JobStatus(str, enum.Enum):
    """The five states every batch system's job states are mapped to."""

    PENDING = "pending"    # accepted, waiting for a slot (or held)
    RUNNING = "running"
    FINISHED = "finished"  # ended with exit code 0; outputs still have to be checked
    FAILED = "failed"      # ended otherwise: non-zero exit, cancelled, timed out, node failure
    UNKNOWN = "unknown"    # the batch system does not (or no longer) know the job

    @property
    def active(self) -> bool:
        return self in (JobStatus.PENDING, JobStatus.RUNNING)


@dataclass(frozen=True)
class JobState:
    """The answer of :meth:`JobManager.query` for one job."""

    status: JobStatus
    exit_code: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class JobRequest:
    """One job to submit: which branches it runs, and which attempt this is.

    ``key`` is stable across attempts and reruns (the workflow's job number), so a
    resubmission replaces the previous attempt instead of adding a job.
    """

    key: str
    branches: tuple[int, ...]
    attempt: int = 1


@dataclass(frozen=True)
class JobBatch:
    """A rendered job file that submits ``requests`` together (one array, or one job)."""

    path: str
    name: str  # the batch system's job name: lets a rerun find jobs whose ids were never recorded
    requests: tuple[JobRequest, ...]


class Refusal(str, enum.Enum):
    """Why a request has no job id after :meth:`JobManager.submit`."""

    FINAL = "final"          # the batch system refused it (bad options): counts as a failed attempt
    TRANSIENT = "transient"  # refused for now (queue limits, daemon busy): resubmitted, no attempt used
    UNKNOWN = "unknown"      # the call timed out: it may have been submitted, looked up by name first


@dataclass(frozen=True)
class SubmitResult:
    """Outcome of submitting one request: its job id, or why it has none (``refusal``, ``error``)."""

    key: str
    job_id: str | None
    error: str = ""
    refusal: Refusal = Refusal.FINAL
    data: dict[str, str] = field(default_factory=dict)  # kept with the job (HTCondor cluster.proc, ARC job URL)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the workflow adapts instead of asking for a backend's name."""

    arrays: bool = False          # many jobs per submission call (arrays, clusters)
    max_array_size: int = 1       # jobs per submission call
    find_by_name: bool = False    # can list jobs by job name (crash recovery)
    exit_codes: bool = False      # query() reports the job's exit code
    shared_filesystem: bool = True  # workers see the submit host's paths (job dir, store, code)
    file_transfer: bool = False   # ships job files in and logs/reports back itself


@dataclass
class JobContext:
    """Everything a job file needs to run branches on the worker, backend-independent.

    ``command`` is the argv that runs one branch, without ``--branch``; each value is
    quoted when rendered, so it reaches the task verbatim. Without ``shared_filesystem``
    nothing in it names a submit-host path: a factory transfers ``bundle`` into the job's
    working directory (``PYLAW_BUNDLE`` is then its name) and transfers ``logs/`` back.
    """

    command: list[str]
    job_dir: str                      # where job files, logs and reports are written
    task_name: str = "pylaw"          # for the batch system's job name
    setup_file: str = ""              # sourced before running (bootstrap hook)
    venv: str = ""                    # activated before running
    pythonpath: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # never credentials: written into files
    transfer_logs: bool = True        # keep one log per branch next to the job files
    walltime: float = 0.0             # seconds; 0: the batch system's default
    options: dict[str, str] = field(default_factory=dict)  # backend options (partition, ...)
    extra_options: list[str] = field(default_factory=list)  # backend options, verbatim
    shared_filesystem: bool = True    # False: no submit-host path in the job (logs to a relative dir)
    bundle: str = ""                  # submit-host path of the code bundle; the job gets it by transfer
    worker_python: str = ""           # the worker's python a bundle runs on (PYLAW_PYTHON; default python3)
    luigi_config: str = ""            # submit-host path of the shipped Luigi config (LUIGI_CONFIG_PATH in the job)


class JobFileFactory(ABC):
    """Renders job requests into job files for one batch system."""

    @abstractmethod
    def render(self, requests: Sequence[JobRequest], context: JobContext, per_file: int) -> list[JobBatch]:
        """Write job files for ``requests``, at most ``per_file`` requests per file (1: no arrays)."""


class JobManager(ABC):
    """Submits, queries, cancels and cleans up jobs of one batch system, in bulk.

    All command-line calls go through ``self.runner`` (a :class:`CommandRunner`).
    """

    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, runner: CommandRunner | None = None) -> None:
        self.runner = runner or CommandRunner()

    @abstractmethod
    def submit(self, batches: Sequence[JobBatch]) -> list[SubmitResult]:
        """Submit every batch; one result per request, in order. Refusals are results, not errors."""

    @abstractmethod
    def query(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """The state of every given job (``UNKNOWN`` for jobs the batch system does not know)."""

    def peek(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """As :meth:`query`, but never acting on a job: ``pylaw status --refresh`` looks, the submitter acts.

        A backend whose :meth:`query` applies a policy (HTCondor removes held jobs) overrides it.
        """
        return self.query(job_ids)

    @abstractmethod
    def cancel(self, job_ids: Sequence[str]) -> None:
        """Remove the given jobs from the batch system (running ones are killed)."""

    def cleanup(self, job_ids: Sequence[str]) -> None:  # noqa: B027 - optional, most systems keep nothing
        """Remove what the batch system keeps of finished jobs (default: nothing to do)."""

    def find(self, names: Sequence[str]) -> dict[str, dict[int, str]]:
        """``{batch name: {index of the request in its batch: job id}}`` for names the batch system knows.

        Backend-neutral crash recovery: each backend knows how its ids relate to a batch
        (Slurm's array elements ``12_3``, HTCondor's ``cluster.proc``); the poller only
        matches the index it saved. Empty unless ``find_by_name``.
        """
        return {}
