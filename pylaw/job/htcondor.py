"""HTCondor backend: one cluster per batch of jobs, through the ``htcondor2`` Python bindings.

A batch is rendered into two files in the job directory: an executable bash script whose
``case`` on the item index (its first argument) sets the job number, attempt and
branches of each job and then runs the wrapper, and a submit description
(``<name>.sub``) that carries only file names, the item index, resources and attributes
pylaw controls or validated, with ``queue pylaw_item from (0 1 ...)``: one item, one proc
per job request, so job ``i`` of a batch is ``<cluster>.<i>``. The description is a
complete file: ``condor_submit <name>.sub`` from the job directory resubmits it by hand.

HTCondor quirks this module is built around (checked against 23.9 daemons, 25.14 client):

- ``$(...)`` anywhere in a submit description is a macro, also in ``arguments`` and
  ``environment``: no user value is ever written into the description; parameter values
  reach the job through the script, quoted by ``shlex.quote``.
- A relative ``executable`` is resolved from the submitting process's cwd, not from
  ``initialdir``: it is written as an absolute path.
- The user log (``log =``) is written by the schedd and the shadow on the submit side;
  :class:`EventLogReader` reads it incrementally with ``JobEventLog``. Jobs it does not
  explain (no log yet, unreadable) are looked up in the queue, then in the history.
- A held job stays in the queue, holding its claim on nothing but blocking its branches
  forever: pylaw removes held jobs when it sees them and counts them as failed attempts
  (reason ``held: <HoldReason>``); the retry policy decides whether they run again.
- The bindings hold the GIL while they wait for a schedd: no Python thread or signal can
  time a call out, so HTCondor's own timeouts apply (a schedd that accepts connections and
  never answers fails a query after 20 s, "did not respond in a reasonable time"; a submit
  waits longer). A submit that fails that way is ``Refusal.UNKNOWN``: looked up by batch
  name before anything is resubmitted.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shlex
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pylaw.errors import CommandError, JobFileError
from pylaw.job.base import (
    Capabilities,
    JobBatch,
    JobContext,
    JobFileFactory,
    JobManager,
    JobRequest,
    JobState,
    JobStatus,
    Refusal,
    SubmitResult,
)
from pylaw.job.files import WRAPPER_NAME, copy_wrapper, job_environment, write_script

logger = logging.getLogger("pylaw.job")

ITEM = "pylaw_item"
#: submit commands pylaw writes itself: extra ``submit_options`` may not set them
RESERVED = frozenset({
    "universe", "executable", "arguments", "initialdir", "log", "output", "error", "batch_name", "jobbatchname",
    "environment", "getenv", "should_transfer_files", "when_to_transfer_output", "transfer_input_files",
    "transfer_output_files", "transfer_executable", "queue", "container_image", "notification", ITEM,
})
SUBMIT_COMMAND = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
ATTRIBUTE = re.compile(r"(?:\+|MY\.)([A-Za-z_][A-Za-z0-9_]*)", re.I)
QUANTITY = re.compile(r"\d+(?:\.\d+)?\s*(?:[KMGT]i?B?)?", re.I)
NAME = re.compile(r"[A-Za-z0-9_.@:-]+")


@dataclass(frozen=True)
class HTCondorSettings:
    """What the ``[htcondor]`` section (or a ``[ce:NAME]`` of ``type = htcondor``) configures."""

    pool: str = ""                 # collector host[:port]; "": the configured one
    schedd: str = ""               # schedd name; "": the pool's (or local) schedd
    universe: str = "vanilla"      # vanilla or container
    container_image: str = ""
    requirements: str = ""         # a ClassAd expression
    request_cpus: str = "1"
    request_memory: str = ""       # e.g. 2G, 2048 (MiB)
    request_disk: str = ""
    accounting_group: str = ""
    submit_options: tuple[tuple[str, str], ...] = ()  # (command or +Attribute, value)
    file_transfer: bool = False    # False: the workers share the job directory and the store
    max_cluster_size: int = 1000

    def check(self) -> None:
        """Refuse settings that would not reach the description intact (:class:`JobFileError`)."""
        if self.universe not in ("vanilla", "container"):
            raise JobFileError(f"HTCondor universe {self.universe!r} is not supported: give vanilla or container")
        if self.universe == "container" and not self.container_image:
            raise JobFileError("HTCondor universe container needs container_image")
        for key in ("request_cpus", "request_memory", "request_disk"):
            value = getattr(self, key)
            if value and not QUANTITY.fullmatch(value):
                raise JobFileError(f"HTCondor {key} = {value!r} is not a number with an optional unit (2G, 2048)")
        if self.accounting_group and not NAME.fullmatch(self.accounting_group):
            raise JobFileError(f"HTCondor accounting_group {self.accounting_group!r} has characters outside "
                               f"letters, digits and _.@:-")
        for key in ("container_image", "requirements"):
            safe_value(getattr(self, key), f"HTCondor {key}")
        if self.container_image and any(c.isspace() or c == "," for c in self.container_image):
            raise JobFileError(f"HTCondor container_image {self.container_image!r} contains a space or comma")
        if self.requirements:
            expression(self.requirements, "HTCondor requirements")
        for command, value in self.submit_options:
            check_option(command, value)
        if self.max_cluster_size < 1:
            raise JobFileError(f"HTCondor max_cluster_size must be at least 1, not {self.max_cluster_size}")


def safe_value(value: str, what: str) -> str:
    """A configured value written into the description: no line break, no macro."""
    if "\n" in value or "\r" in value:
        raise JobFileError(f"{what} {value!r} contains a line break, which would end the submit description's "
                           f"line; write it on one line")
    if "$" in value:
        raise JobFileError(f"{what} {value!r} contains '$': submit-language macros ($(...), $$(...)) are not "
                           f"passed through by pylaw; write the value out")
    return value


def expression(text: str, what: str) -> str:
    """``text`` if it parses as a ClassAd expression."""
    import classad2  # the htcondor package's; imported here so that the module loads without it

    try:
        classad2.ExprTree(text)
    except Exception as exc:  # classad2 raises ClassAdException, but its parser may raise ValueError too
        raise JobFileError(f"{what} {text!r} is not a valid ClassAd expression: {exc}") from None
    return text


def check_option(command: str, value: str) -> None:
    safe_value(value, f"HTCondor submit option {command}")
    safe_value(command, "HTCondor submit option")
    if ATTRIBUTE.fullmatch(command):
        expression(value, f"HTCondor attribute {command}")
    elif not SUBMIT_COMMAND.fullmatch(command):
        raise JobFileError(f"{command!r} is neither a submit command nor a +Attribute / MY.Attribute")
    elif command.lower() in RESERVED:
        raise JobFileError(f"HTCondor submit option {command} is set by pylaw itself and cannot be overridden")


def parse_submit_options(text: str) -> tuple[tuple[str, str], ...]:
    """``submit_options`` of the config: one ``command = value`` per line (``+MaxRuntime = 3600``)."""
    options = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        command, sep, value = line.partition("=")
        if not sep or not command.strip():
            raise JobFileError(f"HTCondor submit option {line!r} is not 'command = value'")
        options.append((command.strip(), value.strip()))
        check_option(*options[-1])
    return tuple(options)


class HTCondorJobFileFactory(JobFileFactory):
    """Renders one bash executable and one submit description per batch (a cluster of ``per_file`` jobs)."""

    def __init__(self, settings: HTCondorSettings | None = None) -> None:
        self.settings = settings or HTCondorSettings()

    def render(self, requests: Sequence[JobRequest], context: JobContext, per_file: int) -> list[JobBatch]:
        self.settings.check()
        size = max(1, per_file)
        wrapper = copy_wrapper(context.job_dir)
        batches = []
        for start in range(0, len(requests), size):
            chunk = tuple(requests[start:start + size])
            name = f"pylaw_{context.task_name}_{uuid.uuid4().hex[:12]}"
            if not NAME.fullmatch(name):
                raise JobFileError(f"task name {context.task_name!r} gives the HTCondor batch name {name!r}, "
                                   f"with characters outside letters, digits and _.@:-")
            script = os.path.join(context.job_dir, f"{name}.sh")
            write_script(script, self.script(name, chunk, context, wrapper))
            path = os.path.join(context.job_dir, f"{name}.sub")
            write_script(path, self.description(name, len(chunk), context, script, wrapper))
            batches.append(JobBatch(path=path, name=name, requests=chunk))
        return batches

    def script(self, name: str, requests: Sequence[JobRequest], context: JobContext, wrapper: str) -> str:
        """The executable of every job of the batch; its only argument is the job's item index."""
        transfer = self.settings.file_transfer
        env = job_environment(context)
        if transfer:  # whatever the context says: paths of the submit host mean nothing on the worker
            if context.transfer_logs:
                env["PYLAW_LOG_DIR"] = "logs"  # transfer_output_files brings it back into the job dir
            if context.bundle:
                env["PYLAW_BUNDLE"] = os.path.basename(context.bundle)
            if context.luigi_config:
                env["PYLAW_LUIGI_CONFIG"] = os.path.basename(context.luigi_config)
        lines = ["#!/bin/bash", f"# pylaw: jobs of {context.task_name}, submitted by {name}.sub", "",
                 "# the job number, attempt and branches of each item (= proc) of the cluster", 'case "${1:-}" in']
        for index, request in enumerate(requests):
            branches = shlex.quote(" ".join(map(str, request.branches)))
            lines.append(f"    {index}) PYLAW_JOB_KEY={shlex.quote(request.key)} "
                         f"PYLAW_ATTEMPT={request.attempt} PYLAW_BRANCHES={branches} ;;")
        lines += ['    *) echo "pylaw-job: no job for item ${1:-}"; exit 3 ;;', "esac",
                  "export PYLAW_JOB_KEY PYLAW_ATTEMPT PYLAW_BRANCHES"]
        lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
        if transfer:
            lines.append("mkdir -p logs  # transfer_output_files lists it: a missing one would hold the job")
        runner = WRAPPER_NAME if transfer else wrapper
        # HTCondor's soft kill (remove, hold, vacate) sends SIGTERM to this process only, and a bash
        # waiting for a foreground child runs its trap only when the child ends: the wrapper and its
        # branch run in their own process group, which gets the signal as a whole.
        lines += ["set -m", f"bash {shlex.quote(runner)} {shlex.join(context.command)} &", "pid=$!",
                  """trap 'kill -TERM -- "-$pid" 2>/dev/null' TERM INT""", 'wait "$pid"; rc=$?',
                  'while kill -0 "$pid" 2>/dev/null; do wait "$pid"; rc=$?; done', 'exit "$rc"']
        return "\n".join(lines) + "\n"

    def description(self, name: str, count: int, context: JobContext, script: str, wrapper: str) -> str:
        """The submit description: file names, the item, resources and validated attributes only."""
        s = self.settings
        for what, path in (("job directory", context.job_dir), ("bundle", context.bundle),
                           ("Luigi config", context.luigi_config)):
            safe_value(path, f"the {what}")
            if s.file_transfer and ("," in path or any(c.isspace() for c in path)):
                raise JobFileError(f"the {what} {path!r} contains a space or comma, which HTCondor's "
                                   f"transfer_input_files cannot carry")
        lines = [f"# pylaw: {count} jobs of {context.task_name}; resubmit by hand: condor_submit {name}.sub",
                 f"universe = {s.universe}"]
        if s.universe == "container":
            lines.append(f"container_image = {s.container_image}")
        lines += [f"executable = {script}", f"arguments = $({ITEM})", f"initialdir = {context.job_dir}",
                  f"batch_name = {name}", f"log = {name}.log", f"output = {name}_$({ITEM}).out",
                  f"error = {name}_$({ITEM}).err", "getenv = false", "notification = never"]
        if s.file_transfer:
            inputs = [wrapper, *(path for path in (context.bundle, context.luigi_config) if path)]
            lines += ["should_transfer_files = YES", "when_to_transfer_output = ON_EXIT_OR_EVICT",
                      f"transfer_input_files = {', '.join(inputs)}", "transfer_output_files = logs"]
        else:
            lines.append("should_transfer_files = NO")
        lines += [f"{key} = {value}" for key in ("request_cpus", "request_memory", "request_disk")
                  if (value := getattr(s, key))]
        if s.requirements:
            lines.append(f"requirements = {s.requirements}")
        if s.accounting_group:
            lines.append(f"accounting_group = {s.accounting_group}")
        own = {ATTRIBUTE.sub(r"\1", command).lower() for command, _ in s.submit_options}
        if context.walltime > 0:
            seconds = int(-(-context.walltime // 1))
            if "maxruntime" not in own:  # CERN's convention; periodic_remove enforces it where it is unknown
                lines.append(f"+MaxRuntime = {seconds}")
            if "periodic_remove" not in own:
                lines.append(f"periodic_remove = JobStatus == 2 && time() - EnteredCurrentStatus > {seconds}")
        lines += [f"{command} = {value}" for command, value in s.submit_options]
        lines += [f"queue {ITEM} from (", *map(str, range(count)), ")"]
        return "\n".join(lines) + "\n"


@dataclass
class Tracked:
    """What the event log told about one job so far."""

    state: JobState
    held: str = ""  # the HoldReason, kept when the removal that follows writes its own event


class EventLogReader:
    """Reads the user logs (``pylaw_*.log``) of one job directory incrementally.

    Every poll reads only the events appended since the last one (the ``JobEventLog``
    objects keep their position); a new process starts from the beginning of each log.
    A log whose jobs all ended is closed and no longer read.
    """

    def __init__(self, job_dir: str) -> None:
        self.job_dir = job_dir
        self.logs: dict[str, Any] = {}
        self.mentioned: dict[str, set[str]] = {}  # per log: every job it has an event of
        self.finished: set[str] = set()
        self.jobs: dict[str, Tracked] = {}

    def update(self) -> dict[str, Tracked]:
        import htcondor2

        for path in sorted(glob.glob(os.path.join(self.job_dir, "pylaw_*.log"))):
            if path in self.finished:
                continue
            if path not in self.logs:
                try:
                    self.logs[path] = htcondor2.JobEventLog(path)
                except Exception as exc:  # an empty or unreadable log: the schedd is asked instead
                    logger.debug("cannot open job event log %s: %s", path, exc)
                    continue
            seen = self.read(self.logs[path], self.mentioned.setdefault(path, set()))
            if seen and all(not self.jobs[job_id].state.status.active for job_id in seen):
                self.logs.pop(path).close()
                self.finished.add(path)
        return self.jobs

    def read(self, log: Any, mentioned: set[str]) -> set[str]:
        """Apply the new events of ``log``; returns the ids of every job the log has mentioned."""
        try:
            for event in log.events(stop_after=0):
                job_id = f"{event.cluster}.{event.proc}"
                mentioned.add(job_id)
                self.jobs[job_id] = apply_event(self.jobs.get(job_id), event)
        except Exception as exc:  # a half-written last event: read again next poll
            logger.debug("reading a job event log stopped: %s", exc)
        return mentioned


def apply_event(tracked: Tracked | None, event: Any) -> Tracked:
    """The job's state after ``event`` (a ``htcondor2.JobEvent``, a mapping with a ``type``)."""
    import htcondor2

    kind = htcondor2.JobEventType
    current = tracked or Tracked(JobState(JobStatus.PENDING))
    if event.type in (kind.SUBMIT, kind.JOB_EVICTED, kind.JOB_SUSPENDED, kind.JOB_RELEASED,
                      kind.SHADOW_EXCEPTION, kind.JOB_RECONNECT_FAILED):
        return Tracked(JobState(JobStatus.PENDING), current.held)
    if event.type in (kind.EXECUTE, kind.JOB_UNSUSPENDED):
        return Tracked(JobState(JobStatus.RUNNING), current.held)
    if event.type == kind.JOB_TERMINATED:
        if event.get("TerminatedNormally", False):
            code = int(event.get("ReturnValue", -1))
        else:
            code = 128 + int(event.get("TerminatedBySignal", 0))
        status = JobStatus.FINISHED if code == 0 else JobStatus.FAILED
        return Tracked(JobState(status, code, "" if code == 0 else f"exit code {code}"), current.held)
    if event.type == kind.JOB_HELD:
        reason = str(event.get("HoldReason", "")) or "no reason given"
        return Tracked(JobState(JobStatus.FAILED, None, f"held: {reason}"), reason)
    if event.type == kind.JOB_ABORTED:
        if current.held:
            return Tracked(JobState(JobStatus.FAILED, None, f"held: {current.held}"), current.held)
        return Tracked(JobState(JobStatus.FAILED, None, f"removed: {event.get('Reason', '')}".rstrip(": ")))
    return current  # image size, file transfer, ad information: no change of state


#: ClassAd JobStatus (queue, history) -> pylaw status
AD_STATUS: dict[int, JobStatus] = {1: JobStatus.PENDING, 2: JobStatus.RUNNING, 3: JobStatus.FAILED,
                                   4: JobStatus.FINISHED, 5: JobStatus.FAILED, 6: JobStatus.RUNNING,
                                   7: JobStatus.PENDING}
AD_PROJECTION = ["ClusterId", "ProcId", "JobStatus", "ExitCode", "ExitBySignal", "ExitSignal", "HoldReason",
                 "RemoveReason", "JobBatchName"]


def state_from_ad(ad: Any) -> JobState:
    """A job ad of the queue or the history -> its state."""
    status = AD_STATUS.get(int(ad.get("JobStatus", 0)), JobStatus.UNKNOWN)
    if int(ad.get("JobStatus", 0)) == 5:
        return JobState(JobStatus.FAILED, None, f"held: {ad.get('HoldReason', '') or 'no reason given'}")
    if int(ad.get("JobStatus", 0)) == 3:
        return JobState(JobStatus.FAILED, None, f"removed: {ad.get('RemoveReason', '')}".rstrip(": "))
    if status is JobStatus.FINISHED:
        by_signal = ad.get("ExitBySignal", False)
        code = 128 + int(ad.get("ExitSignal", 0)) if by_signal else int(ad.get("ExitCode", -1))
        return JobState(JobStatus.FINISHED if code == 0 else JobStatus.FAILED, code,
                        "" if code == 0 else f"exit code {code}")
    return JobState(status)


class HTCondorJobManager(JobManager):
    """Submits a batch as one cluster, follows it in its event log, removes held jobs, cancels in bulk."""

    #: job ids per act()/query constraint: keeps every request small
    ids_per_call = 500
    #: refusals that go away by themselves (queue and per-owner limits, a busy or restarting schedd)
    transient_regex = re.compile(r"MAX_JOBS|max.*jobs|too many|busy|try again|temporar|Failed to connect"
                                 r"|Unable to connect|connection refused|not accepting", re.I)
    #: the call may have reached the schedd before the answer was lost: looked up by name first
    timeout_regex = re.compile(r"timed? ?out|timeout|did not respond", re.I)

    def __init__(self, job_dir: str, settings: HTCondorSettings | None = None) -> None:
        super().__init__()
        self.job_dir = job_dir
        self.settings = settings or HTCondorSettings()
        self.reader = EventLogReader(job_dir)
        self.calls: dict[str, int] = {}  # per bindings call (the benchmark reads them)
        self._schedd: Any = None
        self.removed: set[str] = set()  # held jobs removed by this manager

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        transfer = self.settings.file_transfer
        return Capabilities(arrays=True, max_array_size=self.settings.max_cluster_size, find_by_name=True,
                            exit_codes=True, shared_filesystem=not transfer, file_transfer=transfer)

    # -- the bindings, with a timeout and a count ---------------------------------------

    def call(self, name: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One bindings call, counted; its exceptions become :class:`CommandError`.

        No timeout of pylaw's own: the bindings hold the GIL while they wait for the schedd,
        so no Python thread or signal can interrupt them; HTCondor's own timeouts apply.
        """
        self.calls[name] = self.calls.get(name, 0) + 1
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            raise CommandError(f"HTCondor {name} failed: {exc}", [name]) from exc

    def schedd(self) -> Any:
        """The schedd, located once per manager (a collector query)."""
        if self._schedd is None:
            import htcondor2

            def locate() -> Any:
                collector = htcondor2.Collector(self.settings.pool) if self.settings.pool else htcondor2.Collector()
                if self.settings.schedd:
                    return htcondor2.Schedd(collector.locate(htcondor2.DaemonType.Schedd, self.settings.schedd))
                return htcondor2.Schedd(collector.locate(htcondor2.DaemonType.Schedd))

            self._schedd = self.call("locate", locate)
        return self._schedd

    # -- submit --------------------------------------------------------------------

    def submit(self, batches: Sequence[JobBatch]) -> list[SubmitResult]:
        results: list[SubmitResult] = []
        for batch in batches:
            results += self.submit_batch(batch)
        return results

    def submit_batch(self, batch: JobBatch) -> list[SubmitResult]:
        import htcondor2

        keys = [request.key for request in batch.requests]
        try:
            with open(batch.path) as f:
                description = htcondor2.Submit(f.read())
        except Exception as exc:
            return [SubmitResult(key, None, f"HTCondor cannot parse {batch.path}: {exc}") for key in keys]
        try:
            schedd = self.schedd()
            result = self.call("submit", schedd.submit, description)
        except CommandError as exc:
            return [SubmitResult(key, None, f"{exc} ({batch.path})", self.refusal(str(exc))) for key in keys]
        cluster, first = result.cluster(), result.first_proc()
        if result.num_procs() != len(keys):
            logger.warning("HTCondor cluster %s of %s has %d jobs, not %d", cluster, batch.path,
                           result.num_procs(), len(keys))
        name = self.settings.schedd or "local"
        return [SubmitResult(key, f"{cluster}.{first + index}",
                             data={"cluster": str(cluster), "proc": str(first + index), "schedd": name})
                for index, key in enumerate(keys)]

    @classmethod
    def refusal(cls, message: str) -> Refusal:
        """A failed submit call's message -> whether to look it up, retry it, or count it as an attempt."""
        if cls.timeout_regex.search(message):
            return Refusal.UNKNOWN
        return Refusal.TRANSIENT if cls.transient_regex.search(message) else Refusal.FINAL

    # -- query ---------------------------------------------------------------------

    def peek(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """The jobs' states from the event logs, then the schedd; held jobs stay held."""
        tracked = self.reader.update()
        states = {job_id: tracked[job_id].state if job_id in tracked else JobState(JobStatus.UNKNOWN)
                  for job_id in job_ids}
        unexplained = [job_id for job_id, state in states.items() if state.status is JobStatus.UNKNOWN]
        if unexplained:
            states.update(self.query_schedd(unexplained))
        return states

    def query(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        states = self.peek(job_ids)
        held = {job_id: state.reason for job_id, state in states.items()
                if state.reason.startswith("held:") and job_id not in self.removed}
        if held:
            self.remove_held(held)
        return states

    def query_schedd(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """Queue first, then history, for jobs the event logs do not explain."""
        found: dict[str, JobState] = {}
        for ids in chunks(list(job_ids), self.ids_per_call):
            for source in ("query", "history"):
                missing = [job_id for job_id in ids if job_id not in found]
                if not missing:
                    break
                schedd = self.schedd()
                if source == "query":
                    ads = self.call("query", schedd.query, constraint=id_constraint(missing),
                                    projection=AD_PROJECTION)
                else:
                    ads = self.call("history", schedd.history, constraint=id_constraint(missing),
                                    projection=AD_PROJECTION, match=len(missing))
                for ad in ads:
                    job_id = f"{ad['ClusterId']}.{ad['ProcId']}"
                    if job_id in missing and job_id not in found:
                        found[job_id] = state_from_ad(ad)
        return found

    def remove_held(self, held: dict[str, str]) -> None:
        """The held-job policy: a held job is removed at once (it counts as a failed attempt)."""
        for job_id, reason in list(held.items())[:10]:
            logger.warning("HTCondor job %s was %s; removed (a held job counts as a failed attempt)",
                           job_id, reason)
        self.act_remove(list(held), "pylaw: held jobs are removed and retried per --retries")
        self.removed.update(held)

    def act_remove(self, job_ids: Sequence[str], reason: str) -> None:
        import htcondor2

        for ids in chunks(list(job_ids), self.ids_per_call):
            # a plain string reason is dropped by htcondor2 25.x: (text, code)
            self.call("act", self.schedd().act, htcondor2.JobAction.Remove, ids, (reason, 0))

    # -- cancel, find --------------------------------------------------------------

    def cancel(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            self.act_remove(job_ids, "pylaw: --cancel-jobs")

    def find(self, names: Sequence[str]) -> dict[str, dict[int, str]]:
        found: dict[str, dict[int, str]] = {}
        wanted = [name for name in names if NAME.fullmatch(name)]
        for group in chunks(wanted, 100):
            constraint = " || ".join(f'JobBatchName =?= "{name}"' for name in group)
            schedd = self.schedd()
            ads = [*self.call("query", schedd.query, constraint=constraint, projection=AD_PROJECTION),
                   *self.call("history", schedd.history, constraint=constraint, projection=AD_PROJECTION)]
            for ad in ads:
                found.setdefault(str(ad["JobBatchName"]), {})[int(ad["ProcId"])] = f"{ad['ClusterId']}.{ad['ProcId']}"
        return found

def id_constraint(job_ids: Iterable[str]) -> str:
    """``ClusterId == c && (ProcId == p || ...)`` per cluster; ids are ``int.int``, checked."""
    by_cluster: dict[int, list[int]] = {}
    for job_id in job_ids:
        cluster, _, proc = job_id.partition(".")
        if not (cluster.isdigit() and proc.isdigit()):
            raise CommandError(f"{job_id!r} is not an HTCondor job id (cluster.proc)", ["query"])
        by_cluster.setdefault(int(cluster), []).append(int(proc))
    return " || ".join(f"(ClusterId == {c} && ({' || '.join(f'ProcId == {p}' for p in procs)}))"
                       for c, procs in sorted(by_cluster.items()))


def chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
