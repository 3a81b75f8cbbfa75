"""The poll loop of remote workflows: query → classify → resubmit → report → decide.

:class:`JobPoller` knows branches, job records and the two backend contracts
(:class:`~pylaw.job.base.JobManager`, :class:`~pylaw.job.base.JobFileFactory`); it knows
nothing about tasks (it is told which branch outputs exist) nor about any batch system.
Every step that changes a job record saves the :class:`~pylaw.job.state.SubmissionState`.

Decisions, in order of precedence:

- a branch whose output exists is never submitted (checked again right before submitting);
- a branch owned by an open job record (queued, submitting, pending, running) is never
  submitted by anybody else, this process or a rerun;
- a job that ended with branches lacking outputs is resubmitted for those branches only,
  until it has had ``1 + retries`` attempts; then those branches are given up;
- the loop ends when no job record is open; it succeeds if at most ``tolerance`` branches
  were given up, or earlier as soon as ``acceptance`` branches have outputs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pylaw.errors import CommandError, JobFileError, RemoteWorkflowFailedError
from pylaw.job.base import JobContext, JobFileFactory, JobManager, JobRequest, JobState, JobStatus, Refusal
from pylaw.job.state import JobRecord, RecordStatus, SubmissionState

#: polls in which the batch system does not know a job before it counts as ended
UNKNOWN_POLLS_LIMIT = 2


@dataclass(frozen=True)
class PollSettings:
    tasks_per_job: int = 1
    parallel_jobs: int = 0        # jobs in the batch system at once; 0: no limit
    retries: int = 1              # resubmissions per job
    tolerance: float = 0          # < 1: fraction of branches that may fail, else a count
    acceptance: float = 1.0       # <= 1: fraction of branches that must succeed, else a count
    poll_interval: float = 30.0
    max_polling_time: float = 0   # seconds; 0: no limit
    no_poll: bool = False         # submit once and return
    poll_fails: int = 5           # failed status queries in a row tolerated before giving up


@dataclass(frozen=True)
class Outcome:
    """How the loop ended. ``succeeded`` is None when it returned without deciding (no_poll)."""

    succeeded: bool | None
    done: int
    failed: list[int]
    total: int


def tolerated_count(tolerance: float, total: int) -> int:
    return math.floor(tolerance * total + 1e-9) if tolerance < 1 else int(tolerance)


def accepted_count(acceptance: float, total: int) -> int:
    return math.ceil(acceptance * total - 1e-9) if acceptance <= 1 else min(int(acceptance), total)


class JobPoller:
    """Drives the jobs of one workflow until its branches are done or given up."""

    def __init__(self, manager: JobManager, factory: JobFileFactory, context: JobContext,
                 state: SubmissionState, branches: Sequence[int], existing: Callable[[], set[int]],
                 settings: PollSettings, report: Callable[[str, int], None],
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.manager, self.factory, self.context, self.state = manager, factory, context, state
        self.branches = list(branches)
        self.existing = existing
        self.settings = settings
        self.report_to = report
        self.sleep = sleep
        self.last_error = ""
        self.query_failures, self.query_problem = 0, ""
        self.existing_branches: set[int] = set()

    # -- the loop ------------------------------------------------------------------

    def run(self) -> Outcome:
        caps = self.manager.capabilities
        if not (caps.shared_filesystem or caps.file_transfer):
            raise JobFileError(f"{type(self.manager).__name__} neither shares a file system with its workers nor "
                               f"transfers files: the job files, the wrapper and the branch reports would not "
                               f"reach them")
        started = time.monotonic()
        while True:
            outcome = self.poll_once()
            if outcome is not None:
                return outcome
            if self.settings.no_poll:
                return Outcome(None, len(self.existing_branches), [], len(self.branches))
            limit = self.settings.max_polling_time
            if limit and time.monotonic() - started > limit:
                raise RemoteWorkflowFailedError(
                    f"stopped polling after {limit:g} s with jobs still in the batch system; they keep "
                    f"running: rerun the same command to reattach, or --cancel-jobs", self.failed_branches())
            self.sleep(self.settings.poll_interval)

    def poll_once(self) -> Outcome | None:
        """One round; returns the outcome once it is decided."""
        try:
            self.recover()  # submissions whose answer was lost (a crash, a timed-out call) are looked up first
            states = self.query()
        except CommandError as exc:
            self.query_failures += 1
            if self.query_failures > self.settings.poll_fails:
                raise RemoteWorkflowFailedError(
                    f"the batch system could not be queried {self.query_failures} times in a row (last: {exc}); "
                    f"the jobs keep running: rerun the same command to reattach", self.failed_branches()) from exc
            self.query_problem = f"status query failed ({self.query_failures}/{self.settings.poll_fails}): {exc}"
            self.report()
            return None  # no news is not "unknown": nothing is classified, resubmitted or decided this round
        self.query_failures, self.query_problem = 0, ""
        self.existing_branches = self.existing()  # after the query: a job seen ending has written its outputs
        self.classify(states)
        self.submit()
        self.report()
        return self.decide()

    # -- steps ---------------------------------------------------------------------

    def recover(self) -> None:
        """Find jobs whose submission was interrupted before their ids were saved."""
        lost = self.state.records(RecordStatus.SUBMITTING)
        if not lost:
            return
        found = self.manager.find(sorted({record.batch for record in lost}))
        for record in lost:
            job_id = found.get(record.batch, {}).get(record.index)
            record.job_id = job_id
            record.status = RecordStatus.PENDING if job_id else RecordStatus.QUEUED
            record.unknown_polls = 0
        self.state.save()

    def query(self) -> dict[str, JobState]:
        ids = [r.job_id for r in self.state.records(RecordStatus.PENDING, RecordStatus.RUNNING) if r.job_id]
        return self.manager.query(ids) if ids else {}

    def classify(self, states: dict[str, JobState]) -> None:
        changed = False
        for record in self.state.records(RecordStatus.PENDING, RecordStatus.RUNNING):
            state = states.get(record.job_id or "", JobState(JobStatus.UNKNOWN))
            if state.status.active:
                new = RecordStatus.RUNNING if state.status is JobStatus.RUNNING else RecordStatus.PENDING
                changed |= new is not record.status or record.unknown_polls > 0
                record.status, record.unknown_polls = new, 0
            elif state.status is JobStatus.UNKNOWN and record.unknown_polls + 1 < UNKNOWN_POLLS_LIMIT:
                record.unknown_polls += 1  # just submitted, or the batch system hiccupped: ask again
                changed = True
            else:
                self.ended(record, state)
                changed = True
        if changed:
            self.state.save()

    def ended(self, record: JobRecord, state: JobState) -> None:
        """A job left the batch system: keep its done branches, retry or give up the others."""
        record.history.append({"attempt": record.attempt, "job_id": record.job_id,
                               "status": state.status.value, "exit_code": state.exit_code,
                               **({"reason": state.reason} if state.reason else {})})
        record.exit_code = state.exit_code
        missing = [b for b in record.branches if b not in self.existing_branches]
        if not missing:
            record.status = RecordStatus.DONE
        else:
            self.retry_or_give_up(record, missing)

    def retry_or_give_up(self, record: JobRecord, missing: list[int]) -> None:
        if record.attempt <= self.settings.retries:
            record.branches, record.attempt, record.job_id = missing, record.attempt + 1, None
            record.status = RecordStatus.QUEUED
        else:
            record.branches, record.status = missing, RecordStatus.GIVEN_UP

    def submit(self) -> None:
        """Create records for unowned missing branches, then submit queued records as slots allow."""
        given_up = {b for r in self.state.records(RecordStatus.GIVEN_UP) for b in r.branches}
        taken = self.existing_branches | self.state.owned_branches() | given_up
        unowned = [b for b in self.branches if b not in taken]
        size = max(1, self.settings.tasks_per_job)
        for start in range(0, len(unowned), size):
            self.state.new_record(unowned[start:start + size])
        queued = self.ready_records()
        if not queued:
            if unowned:
                self.state.save()
            return
        self.submit_records(queued)

    def submit_records(self, queued: list[JobRecord]) -> None:
        """Render and submit ``queued`` records, saving them as ``submitting`` before the call."""
        requests = [JobRequest(r.key, tuple(r.branches), r.attempt) for r in queued]
        caps = self.manager.capabilities
        per_file = caps.max_array_size if caps.arrays else 1
        batches = self.factory.render(requests, self.context, per_file=per_file)
        for batch in batches:
            for index, request in enumerate(batch.requests):
                record = self.state.jobs[request.key]
                record.status, record.batch, record.index = RecordStatus.SUBMITTING, batch.name, index
        self.state.save()  # before the call: a rerun after a crash here looks the names up
        for result in self.manager.submit(batches):
            record = self.state.jobs[result.key]
            if result.job_id:
                record.job_id, record.status, record.unknown_polls = result.job_id, RecordStatus.PENDING, 0
                record.backend_data = dict(result.data)
                continue
            self.last_error = result.error
            record.history.append({"attempt": record.attempt, "job_id": None, "status": result.refusal.value,
                                   "error": result.error})
            if result.refusal is Refusal.UNKNOWN:
                pass  # stays SUBMITTING: the next round looks it up by name before anything is resubmitted
            elif result.refusal is Refusal.TRANSIENT:
                record.status = RecordStatus.QUEUED  # tried again next round, without using up an attempt
            else:
                self.retry_or_give_up(record, record.branches)
        self.state.save()

    def ready_records(self) -> list[JobRecord]:
        """Queued records that fit into free slots, with branches done meanwhile removed."""
        queued = self.state.records(RecordStatus.QUEUED)
        limit = self.settings.parallel_jobs
        if limit > 0:
            queued = queued[:max(0, limit - len(self.state.records(RecordStatus.PENDING, RecordStatus.RUNNING,
                                                                     RecordStatus.SUBMITTING)))]
        ready = []
        for record in queued:
            record.branches = [b for b in record.branches if b not in self.existing_branches]
            if record.branches:
                ready.append(record)
            else:
                record.status = RecordStatus.DONE
        return ready

    def failed_branches(self) -> list[int]:
        return sorted({b for r in self.state.records(RecordStatus.GIVEN_UP) for b in r.branches
                       if b not in self.existing_branches})

    def report(self) -> None:
        counts = self.state.counts()
        done = sum(1 for b in self.branches if b in self.existing_branches)
        failed = len(self.failed_branches())
        retried = sum(1 for r in self.state.jobs.values() if r.attempt > 1)
        line = (f"{self.state.workflow_type}: {len(self.branches)} branches: {done} done, {failed} failed "
                f"| jobs: {counts['queued']} queued, {counts['pending']} pending, "
                f"{counts['running']} running, {counts['done']} done, {retried} retried, "
                f"{counts['given_up']} given up")
        if self.query_problem:
            line += f" | {self.query_problem}"
        percent = 100 if not self.branches else int(100 * done / len(self.branches))
        self.report_to(line, percent)

    def decide(self) -> Outcome | None:
        total = len(self.branches)
        done = sum(1 for b in self.branches if b in self.existing_branches)
        failed = self.failed_branches()
        still_open = any(r.status.open for r in self.state.jobs.values())
        accepted = accepted_count(self.settings.acceptance, total)
        if still_open and not (accepted < total and done >= accepted):
            return None
        if not still_open:
            self.state.closed = True
            self.state.save()
        succeeded = done >= accepted or len(failed) <= tolerated_count(self.settings.tolerance, total)
        return Outcome(succeeded, done, failed, total)
