"""The submitter's side of pilot jobs (``--pilots N``): keep N pilots alive while the queue has work.

:class:`PilotPoller` is the :class:`~pylaw.job.poll.JobPoller` with other rules for the
steps that concern branches. Its job records are pilots (no branches of their own); the
work queue (:mod:`pylaw.job.workqueue`) says which branch is done, leased, failed or
pending, the batch system says which pilot is pending, running or gone. Each round:

- **query** and **classify** as for ordinary jobs; a pilot that left the batch system is
  ``done`` (exit code 0) or ``given_up`` (killed, failed): its unfinished leases expire by
  themselves, nothing is resubmitted *for* it;
- **submit**: while branches are pending or leased, pilots are submitted until N are in
  the batch system (never more than there are such branches), all in one submission
  call (one job array on Slurm, one cluster on HTCondor). The number of submissions
  depends on the number of pilots, never on the number of branches. More than
  ``N * (1 + retries)`` failed pilots stop the resubmission: something kills every pilot;
- **report** the queue's branch counts and the pilots' states, in the same line format;
- **decide** when nothing is left to run: success by the branch outputs, as for jobs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from pylaw.job.base import JobContext, JobFileFactory, JobManager, JobState, JobStatus
from pylaw.job.poll import JobPoller, Outcome, PollSettings, accepted_count, tolerated_count
from pylaw.job.state import JobRecord, RecordStatus, SubmissionState
from pylaw.job.workqueue import Snapshot, WorkQueue


class PilotPoller(JobPoller):
    """Drives the pilots of one workflow until its queue is empty."""

    def __init__(self, manager: JobManager, factory: JobFileFactory, context: JobContext,
                 state: SubmissionState, branches: Sequence[int], existing: Callable[[], set[int]],
                 settings: PollSettings, report: Callable[[str, int], None], queue: WorkQueue,
                 pilots: int, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(manager, factory, context, state, branches, existing, settings, report, sleep)
        self.queue, self.pilots = queue, max(1, pilots)
        self.snapshot: Snapshot | None = None

    # -- the steps that differ -----------------------------------------------------------

    def ended(self, record: JobRecord, state: JobState) -> None:
        record.history.append({"attempt": record.attempt, "job_id": record.job_id, "status": state.status.value,
                               "exit_code": state.exit_code, **({"reason": state.reason} if state.reason else {})})
        record.exit_code = state.exit_code
        ok = state.status is JobStatus.FINISHED or (state.status is JobStatus.UNKNOWN and state.exit_code is None
                                                   and self.pilot_said_ended(record))
        record.status = RecordStatus.DONE if ok else RecordStatus.GIVEN_UP

    def pilot_said_ended(self, record: JobRecord) -> bool:
        """A pilot the batch system forgot ended normally if its queue record says so."""
        return bool(self.queue.pilots().get(f"{record.key}.{record.attempt}", {}).get("ended"))

    def submit(self) -> None:
        self.snapshot = self.queue.snapshot()
        counts = self.snapshot.counts()
        work = counts["pending"] + counts["leased"]
        if not work or self.too_many_failed():
            return
        in_batch = len(self.state.records(RecordStatus.QUEUED, RecordStatus.SUBMITTING, RecordStatus.PENDING,
                                          RecordStatus.RUNNING))
        for _ in range(min(self.pilots, work) - in_batch):
            self.state.new_record([])
        queued = self.state.records(RecordStatus.QUEUED)
        if queued:
            self.submit_records(queued)

    def retry_or_give_up(self, record: JobRecord, missing: list[int]) -> None:
        """A pilot refused by the batch system is given up; the next round submits another while work remains."""
        record.status = RecordStatus.GIVEN_UP

    def too_many_failed(self) -> bool:
        failed = len(self.state.records(RecordStatus.GIVEN_UP))
        if failed > self.pilots * (1 + self.settings.retries):
            self.last_error = self.last_error or f"{failed} pilots failed"
            return True
        return False

    def failed_branches(self) -> list[int]:
        if self.snapshot is None:
            return []
        failed = [b for b in self.branches if self.snapshot.status(b) == "failed"]
        if self.stuck():  # nobody will run the rest
            failed += [b for b in self.branches if self.snapshot.status(b) in ("pending", "leased")
                       and b not in self.existing_branches]
        return sorted(failed)

    def stuck(self) -> bool:
        open_pilots = any(r.status.open for r in self.state.jobs.values())
        return not open_pilots and self.snapshot is not None and not self.snapshot.finished

    def report(self) -> None:
        snap = self.snapshot or self.queue.snapshot()
        counts, pilots = snap.counts(), self.state.counts()
        done = sum(1 for b in self.branches if b in self.existing_branches)
        line = (f"{self.state.workflow_type} pilots: {len(self.branches)} branches: {done} done, "
                f"{counts['leased']} running, {counts['failed']} failed, {counts['pending']} pending "
                f"| pilots: {pilots['queued'] + pilots['submitting']} queued, {pilots['pending']} pending, "
                f"{pilots['running']} running, {pilots['done']} ended, {pilots['given_up']} failed")
        if self.query_problem:
            line += f" | {self.query_problem}"
        self.report_to(line, 100 if not self.branches else int(100 * done / len(self.branches)))

    def decide(self) -> Outcome | None:
        total = len(self.branches)
        done = sum(1 for b in self.branches if b in self.existing_branches)
        accepted = accepted_count(self.settings.acceptance, total)
        open_pilots = any(r.status.open for r in self.state.jobs.values())
        finished = self.snapshot is not None and self.snapshot.finished
        if not (accepted < total and done >= accepted) and not (finished and not open_pilots) \
                and not (self.stuck() and self.too_many_failed()):
            return None
        if not open_pilots:
            self.state.closed = True
            self.state.save()
        failed = self.failed_branches()
        # branches the queue calls done but whose outputs are missing (deleted meanwhile, or a pilot
        # lost between winning the completion and moving its outputs into place) failed too
        failed += [b for b in self.branches if b not in self.existing_branches and b not in failed
                   and self.snapshot is not None and self.snapshot.status(b) == "done"]
        succeeded = done >= accepted or len(failed) <= tolerated_count(self.settings.tolerance, total)
        return Outcome(succeeded, done, sorted(failed), total)
