"""The submission state of a remote workflow: which jobs run which branches, in which attempt.

It is the workflow's memory across processes. It is written atomically after every
change (temporary file + rename), so a submitting process killed at any instant leaves
either the previous or the next state, never half a file. Before a submission call the
jobs are recorded as ``submitting`` together with the job name the batch system will
know them by; a rerun that finds such records asks the batch system for those names, so
a job whose id was never recorded is found again rather than submitted a second time.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from pylaw.errors import SubmissionLockedError, SubmissionStateError
from pylaw.target.local import LocalFileTarget

FORMAT = 1
#: closed submissions whose records are kept (as ``past``) in the state file
PAST_KEPT = 20


class RecordStatus(str, enum.Enum):
    """Where a job record stands, from the workflow's point of view."""

    QUEUED = "queued"          # wants submission (first attempt, or a retry)
    SUBMITTING = "submitting"  # a submission call was (maybe) made; the id may be unknown
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"              # the job ended and all its branches have outputs
    GIVEN_UP = "given_up"      # out of retries; its branches without outputs failed for good
    CANCELLED = "cancelled"

    @property
    def in_batch_system(self) -> bool:
        return self in (RecordStatus.SUBMITTING, RecordStatus.PENDING, RecordStatus.RUNNING)

    @property
    def open(self) -> bool:
        """Still owns its branches: nobody else may submit them."""
        return self is RecordStatus.QUEUED or self.in_batch_system


@dataclass
class JobRecord:
    """One job of the workflow across its attempts; ``key`` never changes."""

    key: str
    branches: list[int]
    attempt: int = 1
    status: RecordStatus = RecordStatus.QUEUED
    job_id: str | None = None
    batch: str = ""                     # job name of the submission (for finding lost ids)
    index: int = 0                      # position in that submission (array index)
    exit_code: int | None = None
    unknown_polls: int = 0              # consecutive polls in which the batch system did not know it
    backend_data: dict[str, str] = field(default_factory=dict)  # what the backend keeps per job
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier attempts

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        return cls(**{**data, "status": RecordStatus(data["status"])})


@dataclass
class SubmissionState:
    """All job records of one workflow, saved to ``target`` (a JSON file)."""

    target: LocalFileTarget
    workflow_type: str
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    next_key: int = 0
    closed: bool = False       # the poll loop ended: a new run starts a fresh submission
    past: list[dict[str, Any]] = field(default_factory=list)  # records of earlier, closed submissions
    #: pilot mode only (``--pilots N``): ``{"queue": location of the work queue, "count": N}``; its records
    #: are pilots (``branches`` empty), the queue knows which branch ran where
    pilots: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, target: LocalFileTarget, workflow_type: str) -> SubmissionState:
        """The saved state, or an empty one if there is none (or the saved one is closed)."""
        if not target.exists():
            return cls(target, workflow_type)
        try:
            with target.open("r") as f:
                data = json.load(f)
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
            jobs = {key: JobRecord.from_json(record) for key, record in data["jobs"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise SubmissionStateError(
                f"the submission state {target.path} cannot be read ({exc}); if no jobs of this workflow "
                f"are running any more, rerun with --ignore-submission (or delete the file)") from exc
        running = any(r.status.in_batch_system for r in jobs.values())
        if data.get("workflow_type") != workflow_type and running:
            raise SubmissionStateError(
                f"{target.path} tracks running {data.get('workflow_type')} jobs, but this run uses "
                f"--workflow {workflow_type}; finish or --cancel-jobs those first")
        next_key = int(data.get("next_key", len(jobs)))
        past = list(data.get("past", []))
        state = cls(target, workflow_type, jobs, next_key, bool(data.get("closed")), past,
                    dict(data.get("pilots", {})))
        if state.closed:  # a fresh submission that remembers what the earlier ones did
            finished = {"workflow_type": data.get("workflow_type"),
                        "jobs": {key: record.to_json() for key, record in jobs.items()},
                        **({"pilots": state.pilots} if state.pilots else {})}
            return cls(target, workflow_type, next_key=state.next_key, past=[*past, finished][-PAST_KEPT:])
        return state

    def save(self) -> None:
        data = {"format": FORMAT, "workflow_type": self.workflow_type, "next_key": self.next_key,
                "closed": self.closed, "jobs": {key: record.to_json() for key, record in self.jobs.items()},
                "past": self.past}
        if self.pilots:  # absent otherwise: files of ordinary submissions are unchanged
            data["pilots"] = self.pilots
        with self.target.open("w") as f:
            json.dump(data, f, indent=1)

    def new_record(self, branches: list[int]) -> JobRecord:
        record = JobRecord(key=str(self.next_key), branches=branches)
        self.jobs[record.key] = record
        self.next_key += 1
        return record

    def records(self, *statuses: RecordStatus) -> list[JobRecord]:
        return [record for record in self.jobs.values() if record.status in statuses]

    def owned_branches(self) -> set[int]:
        """Branches that an open job record owns (they must not be submitted again)."""
        return {b for record in self.jobs.values() if record.status.open for b in record.branches}

    def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in RecordStatus}
        for record in self.jobs.values():
            counts[record.status.value] += 1
        return counts


@contextlib.contextmanager
def submitter_lock(state_path: str) -> Iterator[None]:
    """Held by the one process that submits and polls a workflow; a second one gets a clear error.

    An exclusive ``flock`` on ``<state>.lock``, released by the kernel when the holder dies
    (a ``kill -9`` leaves nothing to clean up). The holder writes who it is into the file.
    """
    path = f"{state_path}.lock"
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            raise SubmissionLockedError(
                f"the jobs of this workflow are being submitted and polled by {holder}; wait for it, or stop "
                f"it and rerun the same command to reattach (lock: {path})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
