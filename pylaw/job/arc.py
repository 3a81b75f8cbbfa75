"""ARC backend: jobs as xRSL, submitted in bulk to an ARC CE (A-REX) with the ARC 6 client.

A batch is one multi-job xRSL file (``+(&...)(&...)``) submitted by ONE ``arcsub -C URL -T
arcrest`` call; job ``i`` of a batch is named ``<batch>_<i>``, so a rerun finds jobs whose
ids were never saved by their names in the workflow's job list. Each job uploads the
wrapper, the code bundle and the shipped Luigi config from the client (``inputFiles`` with
local paths), runs the wrapper as ``executable``, and leaves ``logs/``, its stdout/stderr
and A-REX's ``gmlog`` for ``arcget``. Branch outputs go wherever the tasks write them: a
storage element (remote targets), as in every job without a shared file system.

The ARC client state of a workflow lives in its job directory, never in ``~/.arc``: a
job list (``-j arc_jobs.dat``, SQLite written by the client) and a client config (``-z
arc_client.conf``: with it, the client neither reads nor writes the user's ``~/.arc``).

A-REX quirks this module is built around (checked against ARC 6.17, fork LRMS, REST):

- Job states over REST come from the GLUE2 records the info provider writes, every 60 s
  by default: a job submitted a moment ago may be missing from ``arcstat`` ("404 Job not
  found", "not found in the information system"). Such a job is reported PENDING, with
  the reason, for ``grace`` seconds after its submission (kept in ``arc_submitted.json``),
  never as gone: the poller would resubmit it and run its branches twice.
- ``arcsub`` given two ``-C`` of which one is down aborts altogether ("no resource
  returned any information"): endpoints are tried one per call, falling back to the next
  on a connection-type failure, starting with the last one that worked.
- ``arcget`` cleans the job on the CE and drops it from the job list once its files are
  retrieved (what ``arcclean`` does for the rest); ``arckill`` on a running job keeps it
  ``Running`` with "Job is canceled by external request" until the LRMS has killed it.
- Every job gets its own delegated proxy (a new key pair on A-REX): submission costs
  about a second per job, even in one call.
- xRSL strings are literals in double quotes, a ``"`` doubled: no ``$(VAR)`` substitution.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from pylaw.errors import CommandError, CommandTimeoutError, JobFileError
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
from pylaw.job.files import WRAPPER_NAME, copy_wrapper, job_environment

logger = logging.getLogger("pylaw.job")

JOB_LIST = "arc_jobs.dat"
CLIENT_CONF = "arc_client.conf"
SUBMITTED = "arc_submitted.json"
NAME = re.compile(r"[A-Za-z0-9_.-]+")
ENDPOINT = re.compile(r"https://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9_./-]*)?")
#: xRSL relations pylaw writes itself: ``xrsl_options`` may not set them
RESERVED = frozenset({"executable", "arguments", "inputfiles", "outputfiles", "stdout", "stderr", "gmlog",
                      "jobname", "environment", "walltime", "memory", "queue"})


@dataclass(frozen=True)
class ARCSettings:
    """What ``[arc]`` (or a ``[ce:NAME]`` of ``type = arc``) configures."""

    endpoints: tuple[str, ...] = ()
    queue: str = ""
    memory: int = 0                        # MB per job; 0: the CE's default
    runtime_environments: tuple[str, ...] = ()
    xrsl_options: tuple[tuple[str, str], ...] = ()  # (relation, value), written as (name="value")
    grace: float = 180.0                   # s a just-submitted job may be missing from arcstat
    jobs_per_call: int = 100               # xRSL descriptions per arcsub call
    command_timeout: float = 600.0         # per ARC client call (arcsub delegates once per job)

    def check(self) -> None:
        if not self.endpoints:
            raise JobFileError("an ARC CE needs at least one endpoint (endpoint = https://host:443/arex)")
        for url in self.endpoints:
            if not ENDPOINT.fullmatch(url):
                raise JobFileError(f"ARC endpoint {url!r} is not an https://host[:port]/path URL")
        if self.queue and not NAME.fullmatch(self.queue):
            raise JobFileError(f"ARC queue {self.queue!r} has characters outside letters, digits and _.-")
        for rte in self.runtime_environments:  # e.g. ENV/PROXY, APPS/HEP/ATLAS-SITE
            if not re.fullmatch(r"[A-Za-z0-9_.+/-]+", rte):
                raise JobFileError(f"ARC runtime environment {rte!r} has characters outside letters, digits "
                                   f"and _.+/-")
        for relation, _ in self.xrsl_options:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", relation) or relation.lower() in RESERVED:
                raise JobFileError(f"xRSL relation {relation!r} is not a name, or is one pylaw writes itself "
                                   f"({', '.join(sorted(RESERVED))})")
        if self.jobs_per_call < 1 or self.grace < 0:
            raise JobFileError("ARC jobs_per_call must be at least 1 and grace not negative")


def xrsl_string(value: str, what: str) -> str:
    """``value`` as an xRSL literal: in double quotes, ``"`` doubled; no line breaks."""
    if any(c in value for c in "\r\n\0"):
        raise JobFileError(f"{what} {value!r} contains a line break or NUL, which xRSL cannot carry")
    return '"' + value.replace('"', '""') + '"'


def parse_xrsl_options(text: str) -> tuple[tuple[str, str], ...]:
    """``xrsl_options`` of the config: one ``relation = value`` per line (``count = 4``)."""
    options = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            relation, sep, value = line.partition("=")
            if not sep:
                raise JobFileError(f"xRSL option {line!r} is not 'relation = value'")
            options.append((relation.strip(), value.strip()))
    return tuple(options)


class ARCJobFileFactory(JobFileFactory):
    """Renders one multi-job xRSL file per batch of at most ``per_file`` jobs."""

    def __init__(self, settings: ARCSettings) -> None:
        self.settings = settings

    def render(self, requests: Sequence[JobRequest], context: JobContext, per_file: int) -> list[JobBatch]:
        self.settings.check()
        wrapper = copy_wrapper(context.job_dir)
        batches = []
        for start in range(0, len(requests), max(1, per_file)):
            chunk = tuple(requests[start:start + max(1, per_file)])
            name = f"pylaw_{context.task_name}_{uuid.uuid4().hex[:12]}"
            if not NAME.fullmatch(name):
                raise JobFileError(f"task name {context.task_name!r} gives the ARC job name {name!r}, with "
                                   f"characters outside letters, digits and _.-")
            jobs = [self.job(f"{name}_{index}", request, context, wrapper) for index, request in enumerate(chunk)]
            path = os.path.join(context.job_dir, f"{name}.xrsl")
            text = (f"(* pylaw: {len(jobs)} jobs of {context.task_name}; resubmit by hand: "
                    f"arcsub -C URL -T arcrest {name}.xrsl *)\n+" + "\n".join(jobs) + "\n")
            _write(path, text)
            batches.append(JobBatch(path=path, name=name, requests=chunk))
        return batches

    def job(self, name: str, request: JobRequest, context: JobContext, wrapper: str) -> str:
        """One ``(&...)`` description: the wrapper runs ``context.command`` for ``request``'s branches."""
        s = self.settings
        env = job_environment(context)
        if context.transfer_logs:
            env["PYLAW_LOG_DIR"] = "logs"  # in the session directory; arcget brings it back
        if context.bundle:
            env["PYLAW_BUNDLE"] = os.path.basename(context.bundle)
        if context.luigi_config:
            env["PYLAW_LUIGI_CONFIG"] = os.path.basename(context.luigi_config)
        env.update(PYLAW_JOB_KEY=request.key, PYLAW_ATTEMPT=str(request.attempt),
                   PYLAW_BRANCHES=" ".join(map(str, request.branches)))
        inputs = [(WRAPPER_NAME, wrapper), *((os.path.basename(p), p) for p in (context.bundle, context.luigi_config)
                                             if p)]

        def q(value: str, what: str = "a value") -> str:
            return xrsl_string(value, f"{what} of ARC job {name}")

        relations = [f"(executable={q(WRAPPER_NAME)})",
                     "(arguments=" + " ".join(q(arg, "an argument") for arg in context.command) + ")",
                     "(inputFiles=" + " ".join(f"({q(n)} {q(p, 'an input path')})" for n, p in inputs) + ")",
                     '(outputFiles=("logs/" ""))' if context.transfer_logs else "",
                     '(stdout="job.out")(stderr="job.err")(gmlog="gmlog")', f"(jobname={q(name)})",
                     "(environment=" + " ".join(f"({q(k)} {q(v, k)})" for k, v in env.items()) + ")"]
        if context.walltime > 0:
            relations.append(f'(walltime="{int(-(-context.walltime // 1))} seconds")')
        if s.memory:
            relations.append(f'(memory="{s.memory}")')
        if s.queue:
            relations.append(f"(queue={q(s.queue)})")
        relations += [f"(runTimeEnvironment={q(rte)})" for rte in s.runtime_environments]
        relations += [f"({relation}={q(value, relation)})" for relation, value in s.xrsl_options]
        return "(&" + "".join(r for r in relations if r) + ")"


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# --- parsing the ARC client's output (see tests/job/data/arc/ for captured real output) ----


SUBMITTED_LINE = re.compile(r"^Job submitted with jobid: (\S+)\s*$", re.M)
JOB_BLOCK = re.compile(r"^Job: (\S+)\s*$", re.M)
FIELD = re.compile(r"^ (Name|State|Exit Code|Job Error|Specific state): (.*)$", re.M)
#: jobs A-REX (or the job list) does not know: "404 Job not found", "not found in the information system"
NOT_KNOWN = re.compile(r"(?:Failed to process job: (\S+) - 404|Job information not found in the information "
                       r"system: (\S+)|Job not found in job list: (\S+))")
#: a call that reached no CE: try the next endpoint (submit) or count a failed query
UNREACHABLE = re.compile(r"Failed to (?:establish|connect)|no resource returned any information|Connection refused"
                         r"|TCP: GENERIC_ERROR|timed? ?out|Failed to process job: \S+ - (?:5\d\d|0 )", re.I)
#: arcstat "State:" -> pylaw status (Finished is FAILED unless its exit code is 0)
STATUS: dict[str, JobStatus] = {
    "Accepted": JobStatus.PENDING, "Preparing": JobStatus.PENDING, "Submitting": JobStatus.PENDING,
    "Hold": JobStatus.PENDING, "Queuing": JobStatus.PENDING, "Other": JobStatus.PENDING,
    "Undefined": JobStatus.PENDING, "Running": JobStatus.RUNNING, "Finishing": JobStatus.RUNNING,
    "Finished": JobStatus.FINISHED, "Failed": JobStatus.FAILED, "Killed": JobStatus.FAILED,
    "Deleted": JobStatus.FAILED,
}


def parse_submitted(stdout: str) -> list[str]:
    """Job URLs of an ``arcsub`` call, in submission order."""
    return SUBMITTED_LINE.findall(stdout)


def parse_arcstat(output: str) -> tuple[dict[str, JobState], dict[str, str], set[str]]:
    """``(states, names, short ids not known)`` from ``arcstat`` output (stdout and stderr together)."""
    states: dict[str, JobState] = {}
    names: dict[str, str] = {}
    starts = [(m.start(), m.group(1)) for m in JOB_BLOCK.finditer(output)]
    ends = [start for start, _ in starts[1:]] + ([len(output)] if starts else [])
    for (start, url), end in zip(starts, ends, strict=True):
        fields = dict(FIELD.findall(output[start:end]))
        names[url] = fields.get("Name", "")
        states[url] = job_state(fields)
    # A-REX's 404 names the short id (the URL's last part), the job list the URL: both as short ids
    unknown = {next(g for g in m.groups() if g).rsplit("/", 1)[-1] for m in NOT_KNOWN.finditer(output)}
    return states, names, unknown


def job_state(fields: dict[str, str]) -> JobState:
    """One ``arcstat`` block's fields -> its state."""
    state, error = fields.get("State", "").strip(), fields.get("Job Error", "").strip()
    code = int(fields["Exit Code"]) if fields.get("Exit Code", "").strip().lstrip("-").isdigit() else None
    status = STATUS.get(state, JobStatus.UNKNOWN)
    if status is JobStatus.FINISHED and code not in (0, None):
        status = JobStatus.FAILED
    if status is JobStatus.RUNNING and "canceled by external request" in error:
        return JobState(JobStatus.RUNNING, code, f"being killed: {error}")
    if status is JobStatus.FAILED:
        return JobState(status, code, f"{state}: {error}" if error else state)
    return JobState(status, code)


class ARCJobManager(JobManager):
    """Submits batches with ``arcsub``, follows them with ``arcstat``, fetches logs with ``arcget``."""

    commands: ClassVar[dict[str, str]] = {"submit": "arcsub", "status": "arcstat", "get": "arcget",
                                          "kill": "arckill", "clean": "arcclean", "sync": "arcsync"}
    interface = "arcrest"
    #: refusals that go away by themselves (the CE is full, restarting, or unreachable right now)
    transient_regex = UNREACHABLE

    def __init__(self, job_dir: str, settings: ARCSettings, runner: CommandRunner | None = None) -> None:
        super().__init__(runner or CommandRunner(timeout=settings.command_timeout))
        self.job_dir, self.settings = job_dir, settings
        self.job_list = os.path.join(job_dir, JOB_LIST)
        self.preferred = 0  # index of the endpoint that last worked

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return Capabilities(arrays=True, max_array_size=self.settings.jobs_per_call, find_by_name=True,
                            exit_codes=True, shared_filesystem=False, file_transfer=True)

    def arc(self, command: str, *args: str, timeout: float | None = None) -> tuple[int, str]:
        """Run an ARC client command with the workflow's job list and client config; (rc, stdout+stderr)."""
        os.makedirs(self.job_dir, exist_ok=True)
        conf = os.path.join(self.job_dir, CLIENT_CONF)
        if not os.path.exists(conf):  # with -z the client never reads or writes ~/.arc/client.conf
            _write(conf, "# pylaw: ARC client config of this workflow (the user's ~/.arc is not used)\n[common]\n")
        result = self.runner.run([self.commands[command], "-z", conf, "-j", self.job_list, *args], check=False,
                                 timeout=timeout)
        return result.returncode, result.stdout + result.stderr

    # -- submit --------------------------------------------------------------------

    def submit(self, batches: Sequence[JobBatch]) -> list[SubmitResult]:
        results: list[SubmitResult] = []
        for batch in batches:
            results += self.submit_batch(batch)
        return results

    def endpoint_order(self) -> list[int]:
        count = len(self.settings.endpoints)
        return [(self.preferred + i) % count for i in range(count)]

    def submit_batch(self, batch: JobBatch) -> list[SubmitResult]:
        keys = [request.key for request in batch.requests]
        errors = []
        for index in self.endpoint_order():
            endpoint = self.settings.endpoints[index]
            try:
                _, output = self.arc("submit", "-C", endpoint, "-T", self.interface, batch.path)
            except CommandTimeoutError as exc:  # some jobs may be in: looked up by name before resubmitting
                return [SubmitResult(key, None, str(exc), Refusal.UNKNOWN) for key in keys]
            except CommandError as exc:  # not installed
                return [SubmitResult(key, None, str(exc), Refusal.FINAL) for key in keys]
            urls = parse_submitted(output)
            if urls:
                self.preferred = index
                self.remember(urls)
                return self.match(batch, urls, endpoint, output)
            errors.append(f"{endpoint}: {_last_lines(output)}")
            if not UNREACHABLE.search(output):
                break  # the CE answered and refused: another endpoint of the same CE would too
        error = f"arcsub refused {batch.path}: " + "; ".join(errors)
        refusal = Refusal.TRANSIENT if all(UNREACHABLE.search(e) for e in errors) else Refusal.FINAL
        return [SubmitResult(key, None, error, refusal) for key in keys]

    def match(self, batch: JobBatch, urls: list[str], endpoint: str, output: str) -> list[SubmitResult]:
        """Job URLs -> requests: in order when every job went in, else by the job names A-REX reports."""
        keys = [request.key for request in batch.requests]
        if len(urls) == len(keys):
            by_index = dict(enumerate(urls))
        else:
            _, names, _ = parse_arcstat(self.arc("status", *urls)[1])
            prefix = f"{batch.name}_"
            by_index = {int(name[len(prefix):]): url for url, name in names.items()
                        if name.startswith(prefix) and name[len(prefix):].isdigit()}
        stamp = str(int(time.time()))
        results = []
        for index, key in enumerate(keys):
            url = by_index.get(index)
            if url:
                results.append(SubmitResult(key, url, data={"url": url, "endpoint": endpoint, "submitted": stamp}))
            else:
                results.append(SubmitResult(key, None, f"arcsub did not submit job {index} of {batch.path}: "
                                                        f"{_last_lines(output)}", Refusal.FINAL))
        return results

    def remember(self, urls: Iterable[str]) -> None:
        """Submission times, for the grace period of jobs A-REX does not list yet."""
        known = self.submitted()
        known.update({url: time.time() for url in urls})
        _write(os.path.join(self.job_dir, SUBMITTED), json.dumps(known))

    def submitted(self) -> dict[str, float]:
        try:
            with open(os.path.join(self.job_dir, SUBMITTED)) as f:
                return {str(k): float(v) for k, v in json.load(f).items()}
        except (OSError, ValueError, AttributeError):
            return {}

    # -- query ---------------------------------------------------------------------

    def query(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        if not job_ids:
            return {}
        rc, output = self.arc_ids("status", job_ids)
        states, _, unknown = parse_arcstat(output)
        missing = [job_id for job_id in job_ids if job_id not in states]
        if missing and UNREACHABLE.search(output) and not states:
            raise CommandError(f"arcstat reached no CE: {_last_lines(output)}", ["arcstat"], rc, output)
        submitted, now = self.submitted(), time.time()
        for job_id in missing:
            age = now - submitted.get(job_id, 0.0)
            if age < self.settings.grace:
                states[job_id] = JobState(JobStatus.PENDING, None, f"not listed by A-REX yet (submitted {age:.0f} "
                                                                   f"s ago; its information system lags)")
            else:
                why = "unknown to A-REX" if job_id.rsplit("/", 1)[-1] in unknown else "not in arcstat's answer"
                states[job_id] = JobState(JobStatus.UNKNOWN, None, why)
        ended = [job_id for job_id, state in states.items() if state.status in (JobStatus.FINISHED,
                                                                                  JobStatus.FAILED)]
        if ended:
            self.retrieve(ended)
        return {job_id: states[job_id] for job_id in job_ids}

    def arc_ids(self, command: str, job_ids: Sequence[str], *args: str) -> tuple[int, str]:
        """:meth:`arc` for many jobs, their ids in a file (``-i``): no command line gets too long."""
        path = os.path.join(self.job_dir, f"arc_ids.{os.getpid()}")
        _write(path, "".join(f"{job_id}\n" for job_id in job_ids))
        try:
            return self.arc(command, *args, "-i", path)
        finally:
            os.unlink(path)

    def retrieve(self, job_ids: Sequence[str]) -> None:
        """Fetch the ended jobs' ``logs/`` (and job.out/err, gmlog) into the job directory; A-REX then cleans them.

        A failed retrieval loses logs only: it is logged, the jobs stay on the CE for ``cleanup()``.
        """
        download = os.path.join(self.job_dir, "arc_output")
        rc, output = self.arc_ids("get", job_ids, "-J", "-f", "-D", download)
        if rc != 0:
            logger.warning("arcget could not retrieve the logs of %d ARC jobs: %s", len(job_ids), _last_lines(output))
        logs = os.path.join(self.job_dir, "logs")
        for name in os.listdir(download) if os.path.isdir(download) else []:
            source = os.path.join(download, name, "logs")
            if os.path.isdir(source):
                os.makedirs(logs, exist_ok=True)
                for log in os.listdir(source):
                    os.replace(os.path.join(source, log), os.path.join(logs, log))

    # -- cancel, clean, find -------------------------------------------------------

    def cancel(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            rc, output = self.arc_ids("kill", job_ids)  # kills, then cleans once the LRMS is done
            if rc != 0 and UNREACHABLE.search(output):
                raise CommandError(f"arckill reached no CE: {_last_lines(output)}", ["arckill"], rc, output)

    def cleanup(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            self.arc_ids("clean", job_ids, "-f")
        shutil.rmtree(os.path.join(self.job_dir, "arc_output"), ignore_errors=True)

    def find(self, names: Sequence[str]) -> dict[str, dict[int, str]]:
        """Jobs of the given batches by name: the job list first, then the CEs' own lists (``arcsync``)."""
        wanted = set(names)
        found = self.find_in_list(wanted)
        if wanted - set(found):
            for endpoint in self.settings.endpoints:
                self.arc("sync", "-f", "-C", endpoint)
            found = self.find_in_list(wanted)
        return found

    def find_in_list(self, wanted: set[str]) -> dict[str, dict[int, str]]:
        if not os.path.exists(self.job_list):
            return {}
        _, names, _ = parse_arcstat(self.arc("status", "-a")[1])
        found: dict[str, dict[int, str]] = {}
        for url, name in names.items():
            batch, _, index = name.rpartition("_")
            if batch in wanted and index.isdigit():
                found.setdefault(batch, {})[int(index)] = url
        return found


def _last_lines(output: str, count: int = 3) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "no output"
