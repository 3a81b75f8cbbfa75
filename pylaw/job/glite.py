"""CREAM backend (legacy): JDL files and the ``glite-ce-*`` command line.

CREAM CEs are retired in WLCG; some sites still run them. A CREAM CE shares nothing with
the submit host: every job gets its files through its input sandbox (the job script,
the wrapper, the code bundle, the shipped Luigi config) and returns its logs through its
output sandbox, which pylaw fetches with ``glite-ce-job-output``. Branch outputs go to a
storage element (remote targets), as on any grid site.

Per render, the job directory gets one bash script ``<name>.sh`` (its argument, the job's
index, selects the job number, attempt and branches; parameter values are quoted by
``shlex.quote`` there and nowhere else) and one JDL file ``<name>_<index>.jdl`` per job.
The JDL carries only file names, the index and validated requirements.

CREAM facts this module is built around (cream-cli 1.x, see the captured output in
``tests/job/data/glite/``):

- No bulk submission of one description: one ``glite-ce-job-submit`` call per job (it
  accepts several JDL files, but then one failing file hides which job got which id).
  pylaw submits a few jobs in parallel instead (``submit_threads``).
- Delegation: ``glite-ce-delegate-proxy`` once per workflow; every submission names the
  delegation with ``-D``. The delegation id is kept with every job in the submission state
  and reused by a rerun. A CE that no longer knows it (expired with the proxy, cleaned up)
  refuses the submission: pylaw delegates again under a new id (CREAM refuses to delegate
  twice under one id) and submits once more.
- ``-o FILE`` makes the CLI append the new id to a job id file (first line
  ``##CREAMJOBS##``): one per job, ``<name>_<index>.id``. It is written by the CLI itself,
  so a rerun after a crash finds jobs whose ids never reached the submission state.
- Cancel and purge exit 0 even when they fail for a job; their output says it.
- ``OutputSandboxBaseDestURI = "gsiftp://localhost"`` keeps the output sandbox on the CE
  until ``glite-ce-job-output`` fetches it; CREAM keeps a job until it is purged
  (``--cleanup-jobs`` purges every job the job directory's id files name).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import tarfile
import threading
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

from pylaw.errors import CommandError, CommandTimeoutError, JobFileError
from pylaw.job import glite_output as out
from pylaw.job import jdl
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
from pylaw.job.command import CommandRunner
from pylaw.job.credentials import CredentialWatch, inspect_credentials, require_credentials
from pylaw.job.files import WRAPPER_NAME, copy_wrapper, job_environment, write_script

logger = logging.getLogger("pylaw.job")

#: host[:port]/queue, the CE id CREAM's ``-r`` takes (e.g. ``ce.example.org:8443/cream-pbs-cms``)
ENDPOINT = re.compile(r"(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*)(?::(?P<port>\d+))?/(?P<queue>[A-Za-z0-9_.-]+)")
NAME = re.compile(r"[A-Za-z0-9_.-]+")
DEFAULT_PORT = 8443
STDOUT, STDERR, LOGS = "pylaw.out", "pylaw.err", "pylaw_logs.tar.gz"


@dataclass(frozen=True)
class GliteSettings:
    """What the ``[glite]`` section (or a ``[ce:NAME]`` of ``type = glite``) configures."""

    endpoint: str = ""               # host[:port]/queue
    vo: str = ""                     # VirtualOrganisation of the jobs (and of the proxy)
    memory_mb: int = 0               # CERequirements: RAM per job, MB
    cerequirements: str = ""         # more CERequirements (a ClassAd expression, written as a string)
    retrieve_output: bool = True     # fetch the output sandbox (logs) of ended jobs
    submit_threads: int = 4          # submissions in flight at once
    command_timeout: float = 120.0   # seconds per CLI call
    min_lifetime: float = 3600.0     # seconds the proxy must still live at every submission (walltime + margin)
    warn_below: float = 7200.0       # warn while polling when the proxy lives less than this

    def parts(self) -> re.Match[str]:
        match = ENDPOINT.fullmatch(self.endpoint)
        if not match:
            given = repr(self.endpoint) if self.endpoint else "no endpoint"
            raise JobFileError(f"CREAM endpoint: {given}; give the CE id host[:port]/queue, e.g. "
                               f"ce.example.org:8443/cream-pbs-cms")
        return match

    @property
    def service(self) -> str:
        """``host:port``: where proxies are delegated."""
        match = self.parts()
        return f"{match['host']}:{match['port'] or DEFAULT_PORT}"

    @property
    def resource(self) -> str:
        """``host:port/queue``: the ``-r`` of every submission."""
        return f"{self.service}/{self.parts()['queue']}"

    def check(self) -> None:
        self.parts()
        if self.vo and not NAME.fullmatch(self.vo):
            raise JobFileError(f"CREAM vo {self.vo!r} has characters outside letters, digits and _.-")
        if self.submit_threads < 1 or self.command_timeout <= 0 or self.memory_mb < 0:
            raise JobFileError("CREAM submit_threads must be at least 1, command_timeout and memory positive")
        jdl.string(self.cerequirements, "CREAM cerequirements")


class GliteJobFileFactory(JobFileFactory):
    """One job script per render and one JDL file per job (CREAM submits one description per job)."""

    def __init__(self, settings: GliteSettings) -> None:
        self.settings = settings

    def render(self, requests: Sequence[JobRequest], context: JobContext, per_file: int) -> list[JobBatch]:
        self.settings.check()
        if context.shared_filesystem:
            raise JobFileError("a CREAM CE shares no file system with the submit host: the job context must "
                               "be built for file transfer (shared_filesystem=False)")
        name = f"pylaw_{context.task_name}_{uuid.uuid4().hex[:12]}"
        if not NAME.fullmatch(name):
            raise JobFileError(f"task name {context.task_name!r} gives the job name {name!r}, with characters "
                               f"outside letters, digits and _.-")
        wrapper = copy_wrapper(context.job_dir)
        script = os.path.join(context.job_dir, f"{name}.sh")
        write_script(script, self.script(name, requests, context))
        inputs = [script, wrapper, *(path for path in (context.bundle, context.luigi_config) if path)]
        batches = []
        for index, request in enumerate(requests):
            path = os.path.join(context.job_dir, f"{name}_{index}.jdl")
            write_script(path, self.description(f"{name}.sh", index, request, inputs, context, path))
            batches.append(JobBatch(path=path, name=f"{name}_{index}", requests=(request,)))
        return batches

    def script(self, name: str, requests: Sequence[JobRequest], context: JobContext) -> str:
        """The executable of every job of the render; its only argument is the job's index."""
        lines = ["#!/bin/bash", f"# pylaw: jobs of {context.task_name}, one JDL each ({name}_<index>.jdl)",
                 'case "${1:-}" in']
        for index, request in enumerate(requests):
            if not NAME.fullmatch(request.key):
                raise JobFileError(f"job key {request.key!r} has characters outside letters, digits and _.-")
            branches = shlex.quote(" ".join(map(str, request.branches)))
            lines.append(f"    {index}) PYLAW_JOB_KEY={request.key} PYLAW_ATTEMPT={request.attempt} "
                         f"PYLAW_BRANCHES={branches} ;;")
        lines += ['    *) echo "pylaw-job: no job for index ${1:-}"; exit 3 ;;', "esac",
                  "export PYLAW_JOB_KEY PYLAW_ATTEMPT PYLAW_BRANCHES PYLAW_JOB_SYSTEM=glite",
                  '[ -z "${CREAM_JOBID:-}" ] || export PYLAW_JOB_ID="$CREAM_JOBID"  # set by CREAM in the job']
        lines += [f"export {key}={shlex.quote(value)}" for key, value in job_environment(context).items()]
        # the output sandbox lists the log tarball: a missing file would fail the job (DONE-FAILED)
        lines += ["mkdir -p logs", f"bash {WRAPPER_NAME} {shlex.join(context.command)}", "rc=$?",
                  f"tar -czf {LOGS} logs", 'exit "$rc"']
        return "\n".join(lines) + "\n"

    def description(self, executable: str, index: int, request: JobRequest, inputs: Sequence[str],
                    context: JobContext, path: str) -> str:
        """One job's JDL: file names, its index, requirements; nothing else of the user."""
        s = self.settings
        attributes = [("Type", '"Job"'), ("JobType", '"Normal"'), ("Executable", jdl.string(executable, "script")),
                      ("Arguments", jdl.string(str(index), "index")), ("StdOutput", f'"{STDOUT}"'),
                      ("StdError", f'"{STDERR}"'), ("InputSandbox", jdl.string_list(inputs, "input file")),
                      ("OutputSandbox", jdl.string_list([STDOUT, STDERR, LOGS], "output file")),
                      ("OutputSandboxBaseDestURI", '"gsiftp://localhost"')]  # kept on the CE for glite-ce-job-output
        if s.vo:
            attributes.append(("VirtualOrganisation", jdl.string(s.vo, "vo")))
        requirements = []
        if context.walltime > 0:  # GLUE 1.3: minutes the queue allows
            requirements.append(f"other.GlueCEPolicyMaxWallClockTime >= {int(-(-context.walltime // 60))}")
        if s.memory_mb:
            requirements.append(f"other.GlueHostMainMemoryRAMSize >= {s.memory_mb}")
        if s.cerequirements:
            requirements.append(f"({s.cerequirements})")
        if requirements:
            attributes.append(("CERequirements", jdl.string(" && ".join(requirements), "CERequirements")))
        comment = (f"pylaw: job {request.key}, attempt {request.attempt} of {context.task_name}; resubmit by hand:\n"
                   f"glite-ce-job-submit -a -r {s.resource} {os.path.basename(path)}")
        return jdl.document(attributes, comment)


class GliteJobManager(JobManager):
    """Delegates once, submits per job, queries/cancels/purges in bulk, fetches output sandboxes."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        arrays=False, max_array_size=1, find_by_name=True, exit_codes=True, shared_filesystem=False,
        file_transfer=True)

    delegate_command = ("glite-ce-delegate-proxy", "-e")
    submit_command = ("glite-ce-job-submit", "-n")
    status_command = ("glite-ce-job-status", "-n", "-L", "0")  # level 0: the fast call on the CE
    cancel_command = ("glite-ce-job-cancel", "-N")
    purge_command = ("glite-ce-job-purge", "-N")
    output_command = ("glite-ce-job-output", "-N", "--dir")
    #: CREAM job states -> pylaw's; HELD is CREAM's "suspended" (it resumes), not HTCondor's held
    status_map: ClassVar[dict[str, JobStatus]] = {
        "REGISTERED": JobStatus.PENDING, "PENDING": JobStatus.PENDING, "IDLE": JobStatus.PENDING,
        "HELD": JobStatus.PENDING, "RUNNING": JobStatus.RUNNING, "REALLY-RUNNING": JobStatus.RUNNING,
        "DONE-OK": JobStatus.FINISHED, "DONE-FAILED": JobStatus.FAILED, "CANCELLED": JobStatus.FAILED,
        "ABORTED": JobStatus.FAILED, "UNKNOWN": JobStatus.UNKNOWN}
    #: states with an output sandbox to fetch
    with_output = frozenset({"DONE-OK", "DONE-FAILED"})
    #: the CE no longer knows the delegation (expired with its proxy, cleaned up): delegate again
    delegation_lost_regex = re.compile(r"delegation.{0,80}?(not found|unknown|does not exist|expired|not valid)"
                                       r"|DelegationException", re.I | re.S)
    #: refusals that go away by themselves (the CE's load limiter, a busy service)
    transient_regex = re.compile(r"cannot accept jobs at the moment|Threshold for|temporar|try again"
                                 r"|Connection (refused|timed out|reset)|Service Unavailable", re.I)
    ids_per_call = 200     # job ids per status/cancel/purge/output call
    ids_on_argv = 20       # more than this go through an id file (-i)
    WATCH_NOTE = ("the CE's delegated copy ends with it: after renewing, pylaw delegates again when the CE "
                  "refuses the old delegation")

    def __init__(self, job_dir: str, settings: GliteSettings, delegation: str = "",
                 runner: CommandRunner | None = None) -> None:
        super().__init__(runner or CommandRunner(timeout=settings.command_timeout))
        self.job_dir, self.settings = job_dir, settings
        self.delegation = delegation  # from the submission state: a rerun reuses it
        self.delegations: list[str] = []  # delegated by this manager
        self.watch: CredentialWatch | None = None
        self.retrieved: set[str] = set()
        self.lock = threading.Lock()

    # -- credentials ----------------------------------------------------------------

    def require_credentials(self) -> None:
        """Before every submission: the proxy outlives the jobs (walltime plus margin), else nothing is submitted."""
        info = require_credentials(self.settings.min_lifetime, vo=self.settings.vo, runner=self.runner)
        if self.watch is None:  # one watch per manager: each threshold is warned about once
            self.watch = CredentialWatch(info, self.settings.warn_below, note=self.WATCH_NOTE, runner=self.runner)

    def watch_credentials(self) -> None:
        """While polling: warn when the proxy runs low (a reattaching run starts watching here)."""
        if self.watch is None:
            info = inspect_credentials(vo=self.settings.vo, runner=self.runner)
            self.watch = CredentialWatch(info, self.settings.warn_below, note=self.WATCH_NOTE, runner=self.runner)
        self.watch.check()

    # -- delegation and submission ------------------------------------------------------

    def delegate(self) -> str:
        """Delegate the proxy under a new id (``glite-ce-delegate-proxy``); raises :class:`CommandError`."""
        new = f"pylaw-{uuid.uuid4().hex[:20]}"
        argv = [*self.delegate_command, self.settings.service, new]
        result = self.runner.run(argv, check=False)
        text = f"{result.stdout}\n{result.stderr}"
        if result.returncode != 0 or out.delegation_id(text) != new:
            raise CommandError(
                f"glite-ce-delegate-proxy could not delegate the proxy to {self.settings.service}: "
                f"{' '.join(text.split()) or f'exit code {result.returncode}'}. Check the proxy "
                f"(voms-proxy-info -all) and renew it (voms-proxy-init -voms {self.settings.vo or 'VO'})",
                argv, result.returncode, result.stderr)
        logger.info("proxy delegated to %s as %s", self.settings.service, new)
        self.delegation = new
        self.delegations.append(new)
        return new

    def submit(self, batches: Sequence[JobBatch]) -> list[SubmitResult]:
        if not batches:
            return []
        self.require_credentials()  # before anything reaches the CE: a too-short proxy fails here
        if not self.delegation:
            self.delegate()
        with ThreadPoolExecutor(self.settings.submit_threads) as pool:
            return list(pool.map(self.submit_batch, batches))

    def submit_batch(self, batch: JobBatch) -> SubmitResult:
        (request,) = batch.requests
        used = self.delegation
        result = self.submit_once(batch, request.key, used)
        if result.job_id or not self.delegation_lost_regex.search(result.error):
            return result
        with self.lock:  # the first thread that sees the delegation gone replaces it; the others reuse that
            if self.delegation == used:
                logger.warning("the CE refused delegation %s (%s): delegating again", used, result.error)
                self.delegate()
        return self.submit_once(batch, request.key, self.delegation)

    def submit_once(self, batch: JobBatch, key: str, delegation: str) -> SubmitResult:
        ids = id_path(batch.path)
        if not os.path.exists(ids):
            write_script(ids, out.id_file([]))
        argv = [*self.submit_command, "-D", delegation, "-r", self.settings.resource, "-o", ids, batch.path]
        try:
            result = self.runner.run(argv, check=False)
        except CommandTimeoutError as exc:  # it may have reached the CE: the id file is read first
            return SubmitResult(key, None, str(exc), Refusal.UNKNOWN)
        except CommandError as exc:
            return SubmitResult(key, None, str(exc), Refusal.FINAL)
        text = f"{result.stdout}\n{result.stderr}"
        job_id = out.submitted_id(result.stdout)
        if result.returncode == 0 and job_id:
            return SubmitResult(key, job_id, data={"job_url": job_id, "delegation": delegation,
                                                   "resource": self.settings.resource})
        error = f"glite-ce-job-submit of {batch.path} failed: {' '.join(text.split()) or result.returncode}"
        refusal = Refusal.TRANSIENT if self.transient_regex.search(text) else Refusal.FINAL
        return SubmitResult(key, None, error, refusal)

    def find(self, names: Sequence[str]) -> dict[str, dict[int, str]]:
        """Jobs of interrupted submissions, from the id files the CLI wrote (one job per batch)."""
        found = {}
        for name in names:
            try:
                with open(os.path.join(self.job_dir, f"{name}.id")) as f:
                    ids = out.job_ids(f.read())
            except FileNotFoundError:
                continue
            if ids:
                found[name] = {0: ids[-1]}
        return found

    # -- status, output ----------------------------------------------------------------

    def query(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        self.watch_credentials()  # CredentialWatch logs its warnings itself
        states: dict[str, JobState] = {}
        ended = []
        for chunk in chunks(job_ids, self.ids_per_call):
            for job_id, (raw, state) in self.query_chunk(chunk).items():
                states[job_id] = state
                if raw in self.with_output:
                    ended.append(job_id)
        if self.settings.retrieve_output:
            self.retrieve([job_id for job_id in ended if job_id not in self.retrieved])
        return {job_id: states.get(job_id, JobState(JobStatus.UNKNOWN)) for job_id in job_ids}

    def query_chunk(self, job_ids: Sequence[str]) -> dict[str, tuple[str, JobState]]:
        """``{id: (CREAM state, state)}``; a call that explains no job at all raises :class:`CommandError`."""
        text, returncode, argv = self.bulk(self.status_command, job_ids)
        blocks = out.status_blocks(text)
        faults = out.job_faults(text)
        if not blocks and not faults and returncode != 0:
            raise CommandError(f"glite-ce-job-status failed (exit code {returncode}): "
                               f"{' '.join(text.split())[:500]}", argv, returncode)
        states = {job_id: (block.status, self.state_of(block)) for job_id, block in blocks.items()}
        for job_id, fault in faults.items():  # the CE does not know the job (purged, never registered)
            states.setdefault(job_id, ("UNKNOWN", JobState(JobStatus.UNKNOWN, None, fault)))
        return states

    def state_of(self, block: out.StatusBlock) -> JobState:
        status = self.status_map.get(block.status.upper(), JobStatus.UNKNOWN)
        code = block.exit_code
        if status is JobStatus.FINISHED and code not in (None, 0):  # DONE-OK: CREAM's wrapper ran, the job failed
            status = JobStatus.FAILED
        reason = block.reason or ("" if status is not JobStatus.FAILED else block.status.lower())
        if status is JobStatus.FAILED and code not in (None, 0) and not block.reason:
            reason = f"exit code {code}"
        return JobState(status, code, reason)

    def retrieve(self, job_ids: Sequence[str]) -> None:
        """Fetch output sandboxes; the log tarball goes into ``<job_dir>/logs``. Failures are warnings."""
        target = os.path.join(self.job_dir, "sandboxes")
        todo = [job_id for job_id in job_ids
                if not os.path.isdir(os.path.join(target, out.sandbox_name(job_id)))]
        self.retrieved.update(job_id for job_id in job_ids if job_id not in todo)
        if not todo:
            return
        os.makedirs(target, exist_ok=True)
        try:
            text, _, _ = self.bulk((*self.output_command, target), todo)
        except CommandError as exc:
            logger.warning("fetching the output sandboxes of %d jobs failed: %s", len(todo), exc)
            return
        for job_id, directory in out.output_dirs(text).items():
            self.retrieved.add(job_id)
            unpack_logs(os.path.join(target, directory), os.path.join(self.job_dir, "logs"))
        for job_id, fault in out.job_faults(text).items():
            logger.warning("the output sandbox of %s could not be fetched: %s", job_id, fault)

    # -- cancel, purge --------------------------------------------------------------

    def cancel(self, job_ids: Sequence[str]) -> None:
        self.act(self.cancel_command, job_ids, "cancel")

    def cleanup(self, job_ids: Sequence[str]) -> None:
        """Purge the given jobs and every job an id file of the job directory names (earlier attempts too)."""
        known = list(dict.fromkeys([*job_ids, *self.recorded_ids()]))
        self.act(self.purge_command, known, "purge")

    def recorded_ids(self) -> list[str]:
        ids: list[str] = []
        if os.path.isdir(self.job_dir):
            for name in sorted(os.listdir(self.job_dir)):
                if name.endswith(".id"):
                    with open(os.path.join(self.job_dir, name)) as f:
                        ids += out.job_ids(f.read())
        return ids

    def act(self, command: Sequence[str], job_ids: Sequence[str], what: str) -> None:
        """Cancel or purge in bulk. The CLI exits 0 when it fails for a job: its output is read instead."""
        for chunk in chunks(job_ids, self.ids_per_call):
            text, returncode, argv = self.bulk(command, chunk)
            faults = out.job_faults(text)
            for job_id, fault in faults.items():
                logger.info("glite-ce-job-%s of %s: %s", what, job_id, fault)
            problem = out.global_fault(text)
            if (returncode != 0 and not faults) or problem:
                raise CommandError(f"glite-ce-job-{what} failed (exit code {returncode}): "
                                   f"{problem or ' '.join(text.split())[:500]}", argv, returncode)

    def bulk(self, command: Sequence[str], job_ids: Sequence[str]) -> tuple[str, int, list[str]]:
        """Run ``command`` for many jobs: ids on the command line, or in an id file (``-i``) beyond ``ids_on_argv``."""
        path = ""
        if len(job_ids) > self.ids_on_argv:
            path = os.path.join(self.job_dir, f".pylaw_ids_{os.getpid()}_{threading.get_ident()}.ids")
            write_script(path, out.id_file(list(job_ids)))
            argv = [*command, "-i", path]
        else:
            argv = [*command, *job_ids]
        try:
            result = self.runner.run(argv, check=False)
        finally:
            if path:
                os.unlink(path)
        return f"{result.stdout}\n{result.stderr}", result.returncode, argv


def id_path(jdl_path: str) -> str:
    """The job id file next to a JDL file (``<name>_<index>.id``)."""
    return jdl_path[:-len(".jdl")] + ".id" if jdl_path.endswith(".jdl") else f"{jdl_path}.id"


def unpack_logs(sandbox: str, logs: str) -> None:
    """Extract ``logs/<file>`` members of the sandbox's log tarball into ``logs``: regular files only, by base name."""
    path = os.path.join(sandbox, LOGS)
    if not os.path.isfile(path):
        return
    os.makedirs(logs, exist_ok=True)
    try:
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                name = os.path.basename(member.name)
                if not member.isfile() or not name or member.name != f"logs/{name}":
                    continue  # nothing outside logs/, no links, no paths of the job's choosing
                data = tar.extractfile(member)
                if data is not None:
                    tmp = os.path.join(logs, f".{name}.tmp{os.getpid()}")
                    with open(tmp, "wb") as f:
                        f.write(data.read())
                    os.replace(tmp, os.path.join(logs, name))
    except (tarfile.TarError, OSError) as exc:
        logger.warning("the job logs in %s cannot be unpacked: %s", path, exc)


def chunks(items: Iterable[str], size: int) -> Iterable[list[str]]:
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]
