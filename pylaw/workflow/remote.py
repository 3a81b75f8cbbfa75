"""Remote workflows: a workflow's branches run as batch jobs, whatever the batch system.

:class:`BaseRemoteWorkflow` adds the parameters every remote workflow shares and glues a
task to the backend-independent machinery in :mod:`pylaw.job`: it builds the command
that runs one branch on the worker, the :class:`~pylaw.job.base.JobContext`, the
submission state file, and runs the :class:`~pylaw.job.poll.JobPoller`. A backend
mixin (``SlurmWorkflow``, later HTCondor, ARC) only sets ``workflow_type``, its proxy,
and returns its job manager, job file factory and batch options. No batch-system detail
belongs in this module.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
import uuid
from typing import Any, ClassVar

import luigi
from luigi.parameter import ParameterVisibility

from pylaw.errors import ConfigError, JobFileError, RemoteWorkflowFailedError, SubmissionStateError
from pylaw.job.base import JobContext, JobFileFactory, JobManager
from pylaw.job.bundle import BundleSettings, build_bundle
from pylaw.job.files import write_job_config
from pylaw.job.pilots import PilotPoller
from pylaw.job.poll import JobPoller, PollSettings, accepted_count, tolerated_count
from pylaw.job.queuestore import open_store
from pylaw.job.state import RecordStatus, SubmissionState, submitter_lock
from pylaw.job.workqueue import QueueSpec, WorkQueue
from pylaw.parameter import DurationParameter
from pylaw.target.local import LocalFileTarget
from pylaw.task import HIDDEN
from pylaw.workflow.base import BaseWorkflow, WorkflowProxy, describe_numbers
from pylaw.workflow.remote_progress import PollProgress

#: parameters that configure the submission, never passed on to the branch tasks in jobs
REMOTE_PARAMS = frozenset({
    "tasks_per_job", "parallel_jobs", "retries", "tolerance", "acceptance", "poll_interval", "walltime",
    "max_polling_time", "poll_fails", "no_poll", "cancel_jobs", "cleanup_jobs", "ignore_submission", "transfer_logs",
    "pilot", "pilots", "pilot_lease", "pilot_chunk",
})
#: where jobs get the analysis code from (``[job] software``, a computing element's ``software``)
SOFTWARE = ["auto", "shared", "bundle", "setup"]
#: workflow-level and interactive parameters, also not passed on
CONTROL_PARAMS = frozenset({"branch", "branches", "workflow", "local", "ce"})


class own_type_hook:  # noqa: N801 - used as a decorator
    """A backend mixin's hook that answers for its own workflow type only; else the next class in the MRO does.

    A class may carry several backend mixins (``class T(pylaw.Task, pylaw.LocalWorkflow,
    pylaw.HTCondorWorkflow, pylaw.SlurmWorkflow)``: one task, two places). Python would find
    the first mixin's ``remote_job_manager`` whatever ``--workflow``/``--ce`` chose, and
    submit to the wrong batch system.
    """

    def __init__(self, method: Any) -> None:
        self.method = method
        self.__doc__ = method.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.owner, self.name = owner, name

    def __get__(self, instance: Any, objtype: type | None = None) -> Any:
        if instance is None:
            return self.method
        if instance.workflow == vars(self.owner)["workflow_type"]:
            return self.method.__get__(instance, objtype)
        return getattr(super(self.owner, instance), self.name)


class job(luigi.Config):  # noqa: N801 - the class name is the config section name
    """The ``[job]`` config section: how jobs bootstrap their environment on the worker."""

    setup_file = luigi.Parameter(default="", description="file every job sources before running branches")
    venv = luigi.Parameter(default="", description="virtualenv every job activates before running branches")
    software = luigi.ChoiceParameter(
        default="auto", choices=SOFTWARE,
        description="how jobs get the analysis code: auto (shared where the batch system shares the file system, "
                    "else bundle), shared, bundle, or setup (only the setup_file/venv on the worker)")
    worker_python = luigi.Parameter(default="", description="python a bundle runs on, on the worker "
                                                            "(default: python3 on the worker's PATH)")
    pilot_queue = luigi.Parameter(
        default="", description="with --pilots: a root:// directory for the work queues (default: the job "
                                "directory, which needs a shared file system)")


class RemoteWorkflowProxy(WorkflowProxy):
    """Submits the workflow's missing branches as jobs and polls them until decided."""

    def requires(self) -> Any:
        task = self.task
        if task.cancel_jobs or task.cleanup_jobs:
            return []
        if task.pilot:  # each job runs the missing upstream tasks of its branches itself, but the
            return task.branch_map_requires()  # map (which jobs to submit) is built here
        return super().requires()

    def complete(self) -> bool:
        """Enough branch outputs exist (``--tolerance``, ``--acceptance``); never while asked to cancel or clean up."""
        task = self.task
        if task.cancel_jobs or task.cleanup_jobs:
            return False  # the action must run
        if task.branch_map_waiting():
            return False  # no branches known yet (an empty collection would pass the count below)
        completeness = task.branch_completeness()
        return sum(completeness.values()) >= required_branches(task, len(completeness))

    def run(self) -> None:
        with submitter_lock(self.task.remote_state_target().path):
            self.run_locked()

    def run_locked(self) -> None:
        task = self.task
        if task.cancel_jobs or task.cleanup_jobs:
            self.cancel_and_cleanup()
            return
        if task.pilots > 0:
            self.run_pilots()
            return
        manager = task.remote_job_manager()
        state = self.load_state()
        if state.pilots and any(r.status.open for r in state.jobs.values()):
            raise SubmissionStateError(
                f"{state.target.path} tracks pilot jobs of {task.get_task_family()} that are still open: rerun "
                f"with --pilots {state.pilots.get('count', 1)} to reattach, or --cancel-jobs them first")
        poller = JobPoller(
            manager=manager, factory=task.remote_job_file_factory(),
            context=task.remote_job_context(manager.capabilities.shared_filesystem), state=state,
            branches=task.branch_numbers(),
            existing=lambda: {b for b, ok in task.branch_completeness().items() if ok},
            settings=self.settings(), report=self.report)
        self.conclude(poller)

    def run_pilots(self) -> None:
        """``--pilots N``: N generic jobs lease the missing branches from a work queue (:mod:`pylaw.job.pilots`)."""
        task = self.task
        manager = task.remote_job_manager()
        state = self.load_state()
        if not state.pilots and any(r.status.open for r in state.jobs.values()):
            raise SubmissionStateError(
                f"{state.target.path} tracks ordinary jobs of {task.get_task_family()} that are still open; let "
                f"them finish (rerun without --pilots) or --cancel-jobs them before switching to pilots")
        existing = {b for b, ok in task.branch_completeness().items() if ok}
        missing = [b for b in task.branch_numbers() if b not in existing]
        if not state.pilots:  # a fresh submission: a fresh queue (a rerun after a crash reattaches to the saved one)
            state.pilots = {"queue": task.remote_pilot_queue(manager.capabilities.shared_filesystem),
                            "count": task.pilots}
        chunk = task.pilot_chunk or max(1, min(10, len(missing) // (4 * task.pilots)))
        spec = QueueSpec(tuple(missing), float(task.pilot_lease), chunk, 1 + task.retries)
        queue = WorkQueue.create(open_store(state.pilots["queue"]), spec)
        state.save()
        context = task.remote_job_context(manager.capabilities.shared_filesystem)
        context = dataclasses.replace(context, command=pilot_command(context.command, state.pilots["queue"],
                                                                     context.walltime),
                                      env={**context.env, "PYLAW_PILOT": "1"})
        poller = PilotPoller(
            manager=manager, factory=task.remote_job_file_factory(), context=context, state=state,
            branches=list(queue.spec.branches), existing=lambda: {b for b, ok in task.branch_completeness().items()
                                                                  if ok},
            settings=self.settings(), report=self.report, queue=queue, pilots=task.pilots)
        self.conclude(poller)

    def conclude(self, poller: JobPoller) -> None:
        task = self.task
        self.poller = poller
        self.progress = PollProgress(task)
        try:
            outcome = poller.run()
        finally:
            self.progress.close()
        if outcome.succeeded is False:
            last = f"; last submission error: {poller.last_error}" if poller.last_error else ""
            raise RemoteWorkflowFailedError(
                f"{len(outcome.failed)} of {outcome.total} branches of {task.get_task_family()} failed for "
                f"good ({describe_numbers(outcome.failed)}) after {1 + task.retries} attempts each, more "
                f"than --tolerance {task.tolerance:g} allows{last}. Job logs: {task.remote_job_dir()}/logs",
                outcome.failed)

    def settings(self) -> PollSettings:
        t = self.task
        return PollSettings(tasks_per_job=t.tasks_per_job, parallel_jobs=t.parallel_jobs, retries=t.retries,
                            tolerance=t.tolerance, acceptance=t.acceptance, poll_interval=t.poll_interval,
                            max_polling_time=t.max_polling_time, no_poll=t.no_poll, poll_fails=t.poll_fails)

    def load_state(self) -> SubmissionState:
        target = self.task.remote_state_target()
        if self.task.ignore_submission:
            return SubmissionState(target, self.task.workflow)
        return SubmissionState.load(target, self.task.workflow)

    def report(self, line: str, percent: int) -> None:
        self.progress.show(self.poller, line)  # a bar on a terminal, the plain line in logs
        if callable(self.task.set_status_message):  # None outside a Luigi worker
            self.task.set_status_message(line)
        if callable(self.task.set_progress_percentage):
            self.task.set_progress_percentage(percent)

    def cancel_and_cleanup(self) -> None:
        task = self.task
        target = task.remote_state_target()
        if not target.exists():
            print(f"{task.get_task_family()}: no submission state at {target.path}: nothing to do")
            return
        state = SubmissionState.load(target, task.workflow)
        manager = task.remote_job_manager()
        if task.cancel_jobs:
            active = [r for r in state.jobs.values() if r.status.in_batch_system]
            if active:
                ids = [r.job_id for r in active if r.job_id]
                lost = [r.batch for r in active if not r.job_id]
                if lost:  # interrupted submissions: their ids were never saved
                    ids += [i for found in manager.find(sorted(set(lost))).values() for i in found.values()]
                manager.cancel(ids)
                self.wait_until_gone(manager, ids)
            for record in state.jobs.values():
                if record.status.open:
                    record.status = RecordStatus.CANCELLED
            state.closed = True
            state.save()
            print(f"{task.get_task_family()}: cancelled {len(active)} jobs")
        if task.cleanup_jobs:
            manager.cleanup([r.job_id for r in state.jobs.values() if r.job_id])
            shutil.rmtree(task.remote_job_dir(), ignore_errors=True)
            print(f"{task.get_task_family()}: removed job files, logs and state in {task.remote_job_dir()}")

    @staticmethod
    def wait_until_gone(manager: JobManager, job_ids: list[str], timeout: float = 120.0) -> None:
        """Cancelled jobs linger a moment (Slurm: COMPLETING while being killed); wait for them."""
        deadline = time.monotonic() + timeout
        while job_ids and time.monotonic() < deadline:
            active = [i for i, state in manager.query(job_ids).items() if state.status.active]
            if not active:
                return
            time.sleep(0.5)
        print(f"warning: jobs {', '.join(job_ids[:5])} ... are still in the batch system {timeout:g} s "
              f"after being cancelled; check them with the batch system's own tools")


def pilot_command(command: list[str], queue: str, walltime: float) -> list[str]:
    """The branch command of ordinary jobs turned into the pilot's: ``-m pylaw.job.pilot --queue Q ...``."""
    index = command.index("pylaw.job.branch")
    return [*command[:index], "pylaw.job.pilot", "--queue", queue, "--walltime", f"{walltime:g}",
            *command[index + 1:]]


def required_branches(task: Any, total: int) -> int:
    """Branch outputs needed for the workflow to count as complete (tolerance and acceptance)."""
    return min(total - tolerated_count(task.tolerance, total), accepted_count(task.acceptance, total))


class BaseRemoteWorkflow(BaseWorkflow):
    """Shared parameters and hooks of workflows whose branches run as batch jobs."""

    workflow_proxy_cls: ClassVar[type[WorkflowProxy]] = RemoteWorkflowProxy

    # framework parameters: positional=False (see pylaw.Task), hidden from display names
    tasks_per_job = luigi.IntParameter(default=1, significant=False, positional=False, visibility=HIDDEN,
                                       description="branches per job")
    parallel_jobs = luigi.IntParameter(
        default=0, significant=False, positional=False, visibility=HIDDEN,
        description="maximum jobs in the batch system at once; 0: no limit")
    retries = luigi.IntParameter(default=1, significant=False, positional=False, visibility=HIDDEN,
                                 description="resubmissions of a failed job")
    tolerance = luigi.FloatParameter(
        default=0.0, significant=False, positional=False, visibility=HIDDEN,
        description="branches that may fail for the workflow to be done: a fraction if < 1, else a count")
    acceptance = luigi.FloatParameter(
        default=1.0, significant=False, positional=False, visibility=HIDDEN,
        description="branches that must succeed to stop early: a fraction if <= 1, else a count")
    poll_interval = DurationParameter(default="30s", significant=False, positional=False, visibility=HIDDEN,
                                      description="time between polls")
    walltime = DurationParameter(default="0", significant=False, positional=False, visibility=HIDDEN,
                                 description="per-job time limit; 0: default")
    poll_fails = luigi.IntParameter(
        default=5, significant=False, positional=False, visibility=HIDDEN,
        description="failed status queries in a row tolerated before the workflow gives up polling")
    max_polling_time = DurationParameter(
        default="2d", significant=False, positional=False, visibility=HIDDEN,
        description="stop polling after this time; 0: never")
    no_poll = luigi.BoolParameter(default=False, significant=False, positional=False, visibility=HIDDEN,
                                  description="submit and return")
    cancel_jobs = luigi.BoolParameter(default=False, significant=False, positional=False, visibility=HIDDEN,
                                      description="cancel submitted jobs")
    cleanup_jobs = luigi.BoolParameter(
        default=False, significant=False, positional=False, visibility=HIDDEN,
        description="remove job files, logs and the submission state")
    ignore_submission = luigi.BoolParameter(
        default=False, significant=False, positional=False, visibility=HIDDEN,
        description="do not reattach to jobs of an earlier run")
    transfer_logs = luigi.BoolParameter(
        default=True, significant=False, positional=False, visibility=HIDDEN,
        parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="keep one log per branch and attempt next to the job files")
    pilot = luigi.BoolParameter(
        default=False, significant=False, positional=False, visibility=HIDDEN,
        description="do not require upstream workflows; jobs run them")
    pilots = luigi.IntParameter(
        default=0, significant=False, positional=False, visibility=HIDDEN,
        description="late binding: N generic pilot jobs lease the branches from a work queue; 0: one job per "
                    "--tasks-per-job branches")
    pilot_lease = DurationParameter(
        default="60s", significant=False, positional=False, visibility=HIDDEN,
        description="with --pilots: a lease not renewed for this long expires and its branch is claimed again")
    pilot_chunk = luigi.IntParameter(
        default=0, significant=False, positional=False, visibility=HIDDEN,
        description="with --pilots: branches per claim; 0: about a quarter of each pilot's share, at most 10")

    # -- hooks for backends ----------------------------------------------------------

    def remote_job_manager(self) -> JobManager:
        raise NotImplementedError(f"{type(self).__name__} must implement remote_job_manager()")

    def remote_job_file_factory(self) -> JobFileFactory:
        raise NotImplementedError(f"{type(self).__name__} must implement remote_job_file_factory()")

    def remote_job_options(self) -> tuple[dict[str, str], list[str]]:
        """Backend options: named ones (e.g. partition) and verbatim extra ones."""
        return {}, []

    # -- hooks for users -------------------------------------------------------------

    def remote_job_setup(self) -> tuple[str, str]:
        """The bootstrap hook: ``(setup file to source, venv to activate)``; default: the computing
        element's ``setup_file``/``venv``, else the ``[job]`` config."""
        section, element = job(), self.computing_element()  # type: ignore[attr-defined]
        if element is not None and (element.get("setup_file") or element.get("venv")):
            return element.get("setup_file"), element.get("venv")
        return section.setup_file, section.venv

    def remote_walltime(self) -> float:
        """Seconds per job: ``--walltime``, else the computing element's ``walltime``, else 0 (the default)."""
        element = self.computing_element()  # type: ignore[attr-defined]
        if float(self.walltime) or element is None or not element.get("walltime"):
            return float(self.walltime)
        try:
            return float(DurationParameter().parse(element.get("walltime")))
        except ValueError as exc:
            raise ConfigError(f"[ce:{element.name}] walltime: {exc}") from None

    def remote_job_env(self) -> dict[str, str]:
        """Extra environment variables written into job files (never credentials)."""
        return {}

    # -- job files -------------------------------------------------------------------

    def remote_job_dir(self) -> str:
        """Job files, logs and the submission state: a directory no branch output can be called."""
        return self.local_path(f"_pylaw_{self.workflow}_jobs")  # type: ignore[attr-defined]

    def remote_state_target(self) -> LocalFileTarget:
        return LocalFileTarget(os.path.join(self.remote_job_dir(), "submission.json"))

    def remote_pilot_queue(self, shared_filesystem: bool) -> str:
        """Where a new pilot work queue lives: under ``pilot_queue`` of the computing element or ``[job]``
        (a root:// URL pilots reach without a shared file system), else in the job directory."""
        element = self.computing_element()  # type: ignore[attr-defined]
        base = (element.get("pilot_queue") if element is not None else "") or job().pilot_queue
        name = f"queue-{uuid.uuid4().hex[:12]}"
        if base:
            return f"{base.rstrip('/')}/{self.get_task_family()}/{name}"  # type: ignore[attr-defined]
        if not shared_filesystem:
            raise ConfigError(f"--pilots for {self.get_task_family()}: its batch system shares no file "  # type: ignore[attr-defined]
                              f"system with the workers, so the pilots' work queue must be on a storage element: "
                              f"set pilot_queue = root://host//path in [job] or the computing element")
        return os.path.join(self.remote_job_dir(), name)

    def remote_software(self, shared_filesystem: bool) -> str:
        """How jobs get the code: ``shared``, ``bundle`` or ``setup`` (the computing element's ``software``,
        else ``[job] software``; ``auto`` means shared on a shared file system, else bundle)."""
        element = self.computing_element()  # type: ignore[attr-defined]
        where = f"[ce:{element.name}] software" if element is not None and element.get("software") \
            else "[job] software"
        software = (element.get("software") if element is not None else "") or job().software
        if software not in SOFTWARE:
            raise ConfigError(f"{where} = {software!r}; give one of: {', '.join(SOFTWARE)}")
        if software == "auto":
            return "shared" if shared_filesystem else "bundle"
        if software == "shared" and not shared_filesystem:
            family = self.get_task_family()  # type: ignore[attr-defined]
            raise ConfigError(f"{where} = shared, but the batch system of {family} shares no "
                              f"file system with its workers: use bundle, or setup with a setup_file/venv there")
        return software

    def remote_worker_python(self) -> str:
        element = self.computing_element()  # type: ignore[attr-defined]
        return (element.get("worker_python") if element is not None else "") or job().worker_python

    def remote_job_context(self, shared_filesystem: bool = True) -> JobContext:
        """What job files need. With ``software = shared`` (a shared file system, Slurm's default) jobs run
        the submitter's python and import from its paths; otherwise they depend on nothing of the submit
        host: the command starts with ``python``, the environment holds only :meth:`remote_job_env` and
        the worker-side settings, and with a bundle the code comes in its tarball. The submitter's
        effective Luigi config goes with them as one file, credential-like keys dropped
        (:func:`~pylaw.job.files.write_job_config`)."""
        setup_file, venv = self.remote_job_setup()
        options, extra = self.remote_job_options()
        common: dict[str, Any] = dict(
            job_dir=self.remote_job_dir(), task_name=self.get_task_family(),  # type: ignore[attr-defined]
            setup_file=setup_file, venv=venv, env=self.remote_job_env(), transfer_logs=self.transfer_logs,
            walltime=self.remote_walltime(), options=options, extra_options=extra)
        software = self.remote_software(shared_filesystem)
        if software == "shared":
            return JobContext(command=self.remote_branch_command(python="python" if venv else sys.executable),
                              pythonpath=self.remote_pythonpath(), **common)
        if software == "setup" and not (setup_file or venv):
            raise ConfigError(f"software = setup for {common['task_name']}, but no setup_file or venv is "
                              f"configured ([job] or the computing element): jobs would find no analysis code")
        bundle = build_bundle(type(self).__module__, BundleSettings.from_config()).path if software == "bundle" else ""
        config = write_job_config(common["job_dir"], common["task_name"])
        return JobContext(command=self.remote_branch_command(python="python"), shared_filesystem=shared_filesystem,
                          bundle=bundle, worker_python=self.remote_worker_python(), luigi_config=config, **common)

    def remote_branch_command(self, python: str) -> list[str]:
        """argv running one branch of this workflow (the wrapper appends ``--branch=N``)."""
        module = type(self).__module__
        if module == "__main__":
            raise JobFileError(f"{type(self).__name__} is defined in __main__, which a job cannot import; "
                               f"move it into a module and run it with --module")
        family = self.get_task_family()  # type: ignore[attr-defined]
        argv = [python, "-m", "pylaw.job.branch", "--module", module, family]
        for name, param in self.get_params():  # type: ignore[attr-defined]
            if name in REMOTE_PARAMS or name in CONTROL_PARAMS:
                continue
            if param.visibility == ParameterVisibility.PRIVATE:
                continue  # private values (passwords) are never written into a job file; jobs read config
            value = self.param_kwargs[name]  # type: ignore[attr-defined]
            flag = f"--{name.replace('_', '-')}"
            if isinstance(param, luigi.BoolParameter) and param.parsing == param.IMPLICIT_PARSING:
                argv += [flag] if value else []
            elif value is not None:
                argv.append(f"{flag}={param.serialize(value)}")
        return [*argv, "--workflow=local"]

    def remote_pythonpath(self) -> list[str]:
        """Where jobs import this task's module and pylaw from (put first on PYTHONPATH)."""
        paths: list[str] = []
        name = type(self).__module__
        path = getattr(sys.modules[name], "__file__", None)
        if path:
            root = os.path.dirname(os.path.abspath(path))
            for _ in range(name.count(".") + path.endswith("__init__.py")):  # up from a.b.c to the root
                root = os.path.dirname(root)
            paths.append(root)
        # where pylaw itself lives: <root>/pylaw/workflow/remote.py
        paths.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        return list(dict.fromkeys(paths))
