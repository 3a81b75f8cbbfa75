"""The poll loop and submission state, against an in-memory batch system.

``MemoryBatch`` implements the :class:`~pylaw.job.base.JobManager` contract (it is not a
model of Slurm: the real Slurm is exercised in test_slurm_e2e.py). Jobs "run" when the
test says so, which makes crash and retry sequences exact and free of timing.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import luigi
import pytest
from luigi.parameter import ParameterVisibility

import pylaw
from pylaw.errors import (
    CommandError,
    JobFileError,
    RemoteWorkflowFailedError,
    SubmissionLockedError,
    SubmissionStateError,
)
from pylaw.job.base import (
    Capabilities,
    JobBatch,
    JobContext,
    JobFileFactory,
    JobManager,
    JobState,
    JobStatus,
    Refusal,
    SubmitResult,
)
from pylaw.job.branch import make_task, parse
from pylaw.job.poll import JobPoller, PollSettings, accepted_count, tolerated_count
from pylaw.job.state import RecordStatus, SubmissionState, submitter_lock
from pylaw.target.local import LocalFileTarget
from pylaw.workflow.local import LocalWorkflow
from pylaw.workflow.slurm import SlurmWorkflow


class NamedBatches(JobFileFactory):
    def __init__(self) -> None:
        self.count = 0

    def render(self, requests, context, per_file):
        batches = []
        for start in range(0, len(requests), per_file):
            self.count += 1
            batches.append(JobBatch(f"/dev/null/{self.count}", f"batch{self.count}",
                                    tuple(requests[start:start + per_file])))
        return batches


class MemoryBatch(JobManager):
    """Test double of a batch system. Its ids (``mem-0007``) are shaped like no real system's, so
    code that assumes Slurm's ``12_3`` or HTCondor's ``12.3`` fails here."""

    capabilities = Capabilities(arrays=True, max_array_size=100, find_by_name=True)

    def __init__(self) -> None:
        super().__init__()
        # job id -> (batch name, branches, status)
        self.jobs: dict[str, tuple[str, tuple[int, ...], JobStatus]] = {}
        self.index_in_batch: dict[str, int] = {}
        self.submit_calls = 0
        self.lose_answers = 0      # next submit calls queue the jobs but the answer is lost (a timeout)
        self.time_out_unsent = 0   # next submit calls time out before anything is queued
        self.refuse_transiently = 0
        self.failing_queries = 0
        self.data_for = lambda job_id: {}

    def submit(self, batches):
        self.submit_calls += 1
        requests = [(batch, index, request) for batch in batches for index, request in enumerate(batch.requests)]
        if self.refuse_transiently or self.time_out_unsent:
            refusal = Refusal.TRANSIENT if self.refuse_transiently else Refusal.UNKNOWN
            self.refuse_transiently, self.time_out_unsent = max(0, self.refuse_transiently - 1), \
                max(0, self.time_out_unsent - (refusal is Refusal.UNKNOWN))
            return [SubmitResult(request.key, None, "queue full", refusal) for _, _, request in requests]
        results = []
        for batch, index, request in requests:
            job_id = f"mem-{len(self.jobs) + 1:04d}"
            self.jobs[job_id] = (batch.name, request.branches, JobStatus.PENDING)
            self.index_in_batch[job_id] = index
            results.append(SubmitResult(request.key, job_id, data=self.data_for(job_id)))
        if self.lose_answers:
            self.lose_answers -= 1
            return [SubmitResult(r.key, None, "no answer in 120 s", Refusal.UNKNOWN) for r in results]
        return results

    def query(self, job_ids):
        if self.failing_queries:
            self.failing_queries -= 1
            raise CommandError("squeue-like query timed out", ["query"], 1, "")
        return {i: JobState(self.jobs[i][2] if i in self.jobs else JobStatus.UNKNOWN) for i in job_ids}

    def cancel(self, job_ids):
        for i in job_ids:
            self.end(i, JobStatus.FAILED)

    def find(self, names):
        found: dict[str, dict[int, str]] = {}
        for job_id, (name, _, _) in self.jobs.items():
            if name in names:
                found.setdefault(name, {})[self.index_in_batch[job_id]] = job_id
        return found

    def end(self, job_id, status):
        name, branches, _ = self.jobs[job_id]
        self.jobs[job_id] = (name, branches, status)

    def submitted_branches(self):
        return sorted(b for _, branches, _ in self.jobs.values() for b in branches)


@pytest.fixture
def world(tmp_path):
    target = LocalFileTarget(str(tmp_path / "submission.json"))
    done: set[int] = set()
    manager = MemoryBatch()
    reports: list[tuple[str, int]] = []

    def poller(settings=None, state=None, manager=manager):
        return JobPoller(manager, NamedBatches(), JobContext(command=["x"], job_dir=str(tmp_path)),
                         state or SubmissionState.load(target, "memory"), range(6), lambda: set(done),
                         settings or PollSettings(tasks_per_job=2),
                         report=lambda line, percent: reports.append((line, percent)),
                         sleep=lambda s: None)

    poller.reports = reports  # type: ignore[attr-defined]
    return target, done, manager, poller


def finish_all(manager, done, fail=()):
    for job_id, (_, branches, status) in list(manager.jobs.items()):
        if status.active:
            ok = not set(branches) & set(fail)
            done.update(b for b in branches if b not in fail)
            manager.end(job_id, JobStatus.FINISHED if ok else JobStatus.FAILED)


def test_branches_are_chunked_and_submitted_in_one_call(world):
    _, done, manager, poller = world
    done.add(1)
    assert poller().poll_once() is None
    assert manager.submit_calls == 1
    assert sorted(branches for _, branches, _ in manager.jobs.values()) == [(0, 2), (3, 4), (5,)]
    assert poller.reports[-1] == ("memory: 6 branches: 1 done, 0 failed | jobs: 0 queued, 3 pending, "
                                  "0 running, 0 done, 0 retried, 0 given up", 16)
    finish_all(manager, done)
    outcome = poller().poll_once()
    assert outcome is not None and outcome.succeeded and outcome.done == 6
    line, percent = poller.reports[-1]
    assert percent == 100 and "| jobs: 0 queued, 0 pending, 0 running, 3 done" in line


def test_retry_resubmits_only_missing_branches_then_gives_up(world):
    target, done, manager, poller = world
    settings = PollSettings(tasks_per_job=2, retries=1)
    poller(settings).poll_once()
    finish_all(manager, done, fail=[3])
    assert poller(settings).poll_once() is None
    assert manager.submitted_branches() == [0, 1, 2, 3, 3, 4, 5]  # the retry holds branch 3 alone
    finish_all(manager, done, fail=[3])
    outcome = poller(settings).poll_once()
    assert outcome is not None and outcome.succeeded is False and outcome.failed == [3]
    state = SubmissionState.load(target, "memory")
    assert state.jobs == {}  # the loop closed its state: a rerun starts afresh


def test_crash_during_submission_is_recovered_by_job_name(world):
    target, _, manager, poller = world
    state = SubmissionState.load(target, "memory")
    first = poller(state=state)
    first.existing_branches = set()
    first.submit()
    # simulate a crash right after sbatch: the ids never reached the state file
    for record in state.jobs.values():
        record.status, record.job_id = RecordStatus.SUBMITTING, None
    state.save()
    rerun = poller()
    rerun.recover()
    assert all(r.status is RecordStatus.PENDING and r.job_id for r in rerun.state.jobs.values())
    rerun.poll_once()
    assert manager.submitted_branches() == [0, 1, 2, 3, 4, 5]  # nothing submitted twice


def test_timed_out_submission_is_looked_up_by_name_before_anything_is_resubmitted(world):
    _, done, manager, poller = world
    manager.lose_answers = 1  # the jobs are queued, the answer never arrives
    assert poller().poll_once() is None
    assert len(manager.jobs) == 3
    for _ in range(3):  # three more polls (each used to resubmit everything)
        assert poller().poll_once() is None
    assert manager.submitted_branches() == [0, 1, 2, 3, 4, 5] and manager.submit_calls == 1
    finish_all(manager, done)
    outcome = poller().poll_once()
    assert outcome is not None and outcome.succeeded


def test_timed_out_submission_that_never_arrived_is_submitted_once_more(world):
    _, _, manager, poller = world
    manager.time_out_unsent = 1
    assert poller().poll_once() is None
    assert manager.jobs == {}
    assert poller().poll_once() is None  # looked up, not found: queued again, then submitted
    assert poller().poll_once() is None
    assert manager.submitted_branches() == [0, 1, 2, 3, 4, 5]
    records = poller().state.jobs.values()
    assert {r.attempt for r in records} == {1}, "a lost answer is not a failed attempt"


def test_transient_refusals_do_not_use_up_attempts(world):
    _, done, manager, poller = world
    settings = PollSettings(tasks_per_job=2, retries=0)
    manager.refuse_transiently = 3
    for _ in range(3):
        assert poller(settings).poll_once() is None
        assert manager.jobs == {}
    assert poller(settings).poll_once() is None
    assert manager.submitted_branches() == [0, 1, 2, 3, 4, 5]
    records = poller(settings).state.jobs.values()
    assert {r.attempt for r in records} == {1}
    assert [h["status"] for r in records for h in r.history].count("transient") == 9  # 3 rounds x 3 jobs
    finish_all(manager, done)
    outcome = poller(settings).poll_once()
    assert outcome is not None and outcome.succeeded and outcome.failed == []


def test_failed_status_queries_are_tolerated_up_to_poll_fails(world):
    _, done, manager, poller = world
    settings = PollSettings(tasks_per_job=2, poll_fails=2)
    poller(settings).poll_once()
    finish_all(manager, done, fail=[0, 1, 2, 3, 4, 5])  # every job ended: a bad round would resubmit all
    manager.failing_queries = 2
    polling = poller(settings)  # one loop, as in a run
    for failures in (1, 2):
        assert polling.poll_once() is None
        assert poller.reports[-1][0].endswith(f"| status query failed ({failures}/2): squeue-like query timed out")
    assert manager.submit_calls == 1, "nothing resubmitted while the batch system could not be asked"
    assert polling.poll_once() is None  # the query works again: the failed jobs are resubmitted
    assert manager.submit_calls == 2 and "status query failed" not in poller.reports[-1][0]
    manager.failing_queries = 3
    with pytest.raises(RemoteWorkflowFailedError, match="could not be queried 3 times in a row"):
        for _ in range(3):
            polling.poll_once()


def test_parallel_jobs_limits_what_is_in_the_batch_system(world):
    _, done, manager, poller = world
    settings = PollSettings(tasks_per_job=1, parallel_jobs=2)
    poller(settings).poll_once()
    assert len(manager.jobs) == 2
    finish_all(manager, done)
    poller(settings).poll_once()
    assert len(manager.jobs) == 4 and manager.submitted_branches() == [0, 1, 2, 3]


def test_counts_and_broken_state_file(world, tmp_path):
    assert tolerated_count(0.25, 10) == 2 and tolerated_count(3, 10) == 3
    assert accepted_count(1.0, 10) == 10 and accepted_count(0.5, 10) == 5 and accepted_count(7, 10) == 7
    target = LocalFileTarget(str(tmp_path / "bad.json"))
    with target.open("w") as f:
        f.write("{not json")
    with pytest.raises(SubmissionStateError, match="--ignore-submission"):
        SubmissionState.load(target, "memory")


class Secretive(pylaw.Task, LocalWorkflow, SlurmWorkflow):
    """A workflow with every kind of parameter a job command must carry (or must not)."""

    text = luigi.Parameter(default="")
    flag = luigi.BoolParameter(default=False)
    count = luigi.IntParameter(default=1)
    password = luigi.Parameter(default="", visibility=ParameterVisibility.PRIVATE, significant=False)

    def create_branch_map(self):
        return [0, 1]

    def output(self):
        return self.local_target(f"out_{self.branch}.txt")


def test_branch_command_carries_parameters_but_no_secrets_or_submission_settings():
    task = Secretive(version="v1", text="-starts with a dash", flag=True, count=3, password="hunter2",
                     workflow="slurm", tasks_per_job=5, retries=2)
    command = task.remote_branch_command(python="python")
    assert command[:6] == ["python", "-m", "pylaw.job.branch", "--module", __name__, "Secretive"]
    args = command[6:]
    assert "--text=-starts with a dash" in args and "--flag" in args and "--count=3" in args
    assert "--version=v1" in args and args[-1] == "--workflow=local"
    assert not any("hunter2" in arg or "password" in arg for arg in args)
    assert not any(arg.startswith(("--tasks-per-job", "--retries", "--branch")) for arg in args)
    # the branch runner rebuilds the same task from these arguments
    rebuilt = make_task(*parse([*command[3:], "--branch=1"]))
    assert (rebuilt.text, rebuilt.flag, rebuilt.count, rebuilt.branch) == ("-starts with a dash", True, 3, 1)


def test_no_poll_submits_once_and_max_polling_time_stops_the_submitter(world):
    target, _, manager, poller = world
    outcome = poller(PollSettings(tasks_per_job=3, no_poll=True)).run()
    assert outcome.succeeded is None and len(manager.jobs) == 2
    assert not SubmissionState.load(target, "memory").closed  # a later run reattaches
    with pytest.raises(RemoteWorkflowFailedError, match="rerun the same command to reattach"):
        poller(PollSettings(tasks_per_job=3, max_polling_time=1e-9)).run()
    assert len(manager.jobs) == 2  # the reattached run submitted nothing new


def test_a_second_submitter_of_the_same_workflow_is_refused_naming_the_first(tmp_path):
    state = str(tmp_path / "submission.json")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pylaw.job.state import submitter_lock
        with submitter_lock({state!r}):
            print("locked", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SubmissionLockedError, match=rf"by pid {holder.pid} on .* since"), \
                submitter_lock(state):
            pass
    finally:
        holder.kill()  # a kill -9 of the submitter: the kernel releases its lock
        holder.wait()
    with submitter_lock(state):
        pass


def test_attempt_history_survives_the_end_of_a_submission(world):
    target, done, manager, poller = world
    settings = PollSettings(tasks_per_job=2, retries=1)
    poller(settings).poll_once()
    finish_all(manager, done, fail=[3])
    poller(settings).poll_once()
    finish_all(manager, done)
    assert poller(settings).poll_once().succeeded
    rerun = SubmissionState.load(target, "memory")
    assert rerun.jobs == {} and len(rerun.past) == 1  # a fresh submission that remembers the last one
    attempts = {key: [h["status"] for h in record["history"]] for key, record in rerun.past[0]["jobs"].items()}
    assert sorted(attempts.values()) == [["failed", "finished"], ["finished"], ["finished"]]
    rerun.save()
    assert SubmissionState.load(target, "memory").past == rerun.past


def test_backend_data_of_a_job_is_kept_in_the_state(world):
    target, _, manager, poller = world
    manager.data_for = lambda job_id: {"slot": f"slot-of-{job_id}"}
    poller().poll_once()
    records = SubmissionState.load(target, "memory").jobs.values()
    assert {r.backend_data["slot"] for r in records} == {f"slot-of-{r.job_id}" for r in records}


def test_a_backend_without_shared_file_system_or_transfer_is_refused(world):
    _, _, manager, poller = world
    manager.capabilities = Capabilities(arrays=True, max_array_size=100, shared_filesystem=False)
    with pytest.raises(JobFileError, match="neither shares a file system with its workers nor transfers"):
        poller().run()
    assert manager.jobs == {}
