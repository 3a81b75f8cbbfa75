"""Slurm backend: job files as ``sbatch`` scripts, bulk submission as job arrays.

One ``sbatch --array`` call submits a whole batch of jobs; array element ``i`` runs the
branches of the batch's ``i``-th job request (its job id is ``<array id>_<i>``). Where
arrays are disabled (``[slurm] arrays = false``, or a site with ``MaxArraySize=0``) every
job is one script and one ``sbatch`` call. Everything the workflow sees is ids and
:class:`~pylaw.job.base.JobState` values.

Slurm quirks this module is built around (checked against Slurm 22.05):

- ``squeue`` forgets a job ``MinJobAge`` seconds (default 300) after it ended; until then
  ``squeue --states=all`` still lists it with its final state.
- ``squeue -j ID`` for ONE unknown id exits 1 ("Invalid job id specified"); with several
  ids, the unknown ones are silently left out.
- ``sacct`` without an accounting daemon (slurmdbd) fails with "Slurm accounting storage
  is disabled", so it is only used where ``AccountingStorageType`` is not ``none``.
- Exit codes are not in ``squeue``'s output; ``scontrol -o show job`` has them
  (``ExitCode=rc:signal``) as long as ``squeue`` knows the job.
- ``sbatch --parsable`` prints ``id`` or ``id;cluster``.
- Cancelling every element of an array that is still pending as a whole leaves ONE
  record, ``<array id>`` (``ArrayTaskId=4294967294``, Slurm's NO_VAL), instead of one per
  element: its state stands for all elements.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import uuid
from collections.abc import Iterable, Sequence
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
from pylaw.job.files import copy_wrapper, job_environment, write_script

logger = logging.getLogger("pylaw.job")

#: Slurm's "no value" marker for numeric fields (e.g. ArrayTaskId of a whole array)
NO_VAL = 4294967294


class SlurmJobFileFactory(JobFileFactory):
    """Renders ``sbatch`` scripts: array scripts when ``per_file > 1``, else one script per job."""

    def render(self, requests: Sequence[JobRequest], context: JobContext, per_file: int) -> list[JobBatch]:
        size = max(1, per_file)
        arrays = size > 1
        wrapper = copy_wrapper(context.job_dir)
        batches = []
        for start in range(0, len(requests), size):
            chunk = tuple(requests[start:start + size])
            name = f"pylaw_{context.task_name}_{uuid.uuid4().hex[:12]}"
            path = os.path.join(context.job_dir, f"{name}.sh")
            write_script(path, self.script(name, chunk, context, wrapper, array=arrays))
            batches.append(JobBatch(path=path, name=name, requests=chunk))
        return batches

    def script(self, name: str, requests: Sequence[JobRequest], context: JobContext, wrapper: str,
               array: bool) -> str:
        lines = ["#!/usr/bin/env bash"]
        lines += [f"#SBATCH {option}" for option in self.directives(name, len(requests), context, array)]
        lines += ["", "# pylaw: the job number, attempt and branches of each array element",
                  'case "${SLURM_ARRAY_TASK_ID:-0}" in']
        for index, request in enumerate(requests):
            branches = shlex.quote(" ".join(map(str, request.branches)))
            lines.append(f"    {index}) PYLAW_JOB_KEY={shlex.quote(request.key)} "
                         f"PYLAW_ATTEMPT={request.attempt} PYLAW_BRANCHES={branches} ;;")
        lines += ['    *) echo "pylaw-job: no job for array index ${SLURM_ARRAY_TASK_ID}"; exit 3 ;;', "esac",
                  "export PYLAW_JOB_KEY PYLAW_ATTEMPT PYLAW_BRANCHES"]
        lines += [f"export {key}={shlex.quote(value)}" for key, value in job_environment(context).items()]
        lines.append(f"exec bash {shlex.quote(wrapper)} {shlex.join(context.command)}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def directives(name: str, count: int, context: JobContext, array: bool) -> list[str]:
        """``#SBATCH`` options. sbatch reads them up to the first command, one per line."""
        output = os.path.join(context.job_dir, f"{name}_%a.out" if array else f"{name}.out")
        options = [f"--job-name={name}", f"--output={output}"]
        if array:
            options.append(f"--array=0-{count - 1}")
        if context.walltime > 0:
            options.append(f"--time={max(1, -(-int(context.walltime) // 60))}")  # minutes, rounded up
        options += [f"--{key}={value}" for key, value in context.options.items() if value]
        options += list(context.extra_options)
        for option in options:
            if "\n" in option or "\r" in option:
                raise JobFileError(f"sbatch option {option!r} of {context.task_name} contains a line break, "
                                   f"which would end the #SBATCH line; remove it from [slurm] or the task")
        return options


class SlurmJobManager(JobManager):
    """Submits with ``sbatch``, queries with ``squeue`` (+ ``sacct``/``scontrol``), cancels: ``scancel``."""

    submit_command: ClassVar[list[str]] = ["sbatch", "--parsable"]
    # --array: one line per array element; --states=all: also jobs that ended (until MinJobAge)
    squeue_command: ClassVar[list[str]] = ["squeue", "--noheader", "--array", "--states=all",
                                           "--format=%i|%T|%r"]
    find_command: ClassVar[list[str]] = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%j"]
    sacct_command: ClassVar[list[str]] = ["sacct", "--noheader", "--parsable2",
                                          "--format=JobID,State,ExitCode"]
    scontrol_jobs_command: ClassVar[list[str]] = ["scontrol", "--oneliner", "show", "job"]
    config_command: ClassVar[list[str]] = ["scontrol", "show", "config"]
    cancel_command: ClassVar[list[str]] = ["scancel"]

    submit_regex: ClassVar[re.Pattern] = re.compile(r"^(\d+)(?:;\S+)?\s*$")
    # refusals that go away by themselves: a full queue (MaxJobCount: EAGAIN), a per-user submit
    # limit of the association or QOS, an overloaded or restarting slurmctld
    transient_regex: ClassVar[re.Pattern] = re.compile(
        r"Resource temporarily unavailable|temporarily unable|Socket timed out|Unable to contact slurm controller"
        r"|job submit limit|MaxSubmitJob", re.IGNORECASE)
    job_line_regex: ClassVar[re.Pattern] = re.compile(r"^(\d+(?:_\d+)?)\|([A-Z_]+)[^|]*\|?(.*)$")
    scontrol_field_regex: ClassVar[re.Pattern] = re.compile(r"(\w+)=(\S*)")
    config_regex: ClassVar[re.Pattern] = re.compile(r"^(\w+)\s*=\s*(.*?)\s*$", re.M)

    #: Slurm job states (squeue, sacct, scontrol) -> pylaw statuses
    status_map: ClassVar[dict[str, JobStatus]] = {
        **dict.fromkeys(("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD",
                         "SUSPENDED", "STOPPED"), JobStatus.PENDING),
        # COMPLETING: the script ended but the exit code is not final until cleanup is done
        **dict.fromkeys(("RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING"), JobStatus.RUNNING),
        "COMPLETED": JobStatus.FINISHED,
        **dict.fromkeys(("FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
                         "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED"), JobStatus.FAILED),
    }
    #: ids per scancel/squeue call: keeps argv far below the kernel's limit
    ids_per_call: ClassVar[int] = 500

    def __init__(self, runner: CommandRunner | None = None, arrays: bool = True) -> None:
        super().__init__(runner)
        self.use_arrays = arrays
        self._config: dict[str, str] | None = None

    # -- capabilities --------------------------------------------------------------

    def cluster_config(self) -> dict[str, str]:
        """``scontrol show config`` as a dict, read once per manager."""
        if self._config is None:
            result = self.runner.run(self.config_command)
            self._config = self.parse_config(result.stdout)
        return self._config

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        max_array = int(self.cluster_config().get("MaxArraySize", "1001") or 0)
        arrays = self.use_arrays and max_array > 1
        return Capabilities(arrays=arrays, max_array_size=max(1, max_array - 1) if arrays else 1,
                            find_by_name=True, exit_codes=True, shared_filesystem=True, file_transfer=False)

    def accounting(self) -> bool:
        return self.cluster_config().get("AccountingStorageType", "accounting_storage/none") \
            != "accounting_storage/none"

    # -- submit --------------------------------------------------------------------

    def submit(self, batches: Sequence[JobBatch]) -> list[SubmitResult]:
        results: list[SubmitResult] = []
        for batch in batches:
            results += self.submit_batch(batch)
        return results

    def submit_batch(self, batch: JobBatch) -> list[SubmitResult]:
        keys = [request.key for request in batch.requests]
        try:
            output = self.runner.run([*self.submit_command, batch.path]).stdout
        except CommandTimeoutError as exc:  # sbatch may have queued it before the answer was lost
            return [SubmitResult(key, None, f"sbatch did not answer for {batch.path}: {exc}", Refusal.UNKNOWN)
                    for key in keys]
        except CommandError as exc:
            refusal = Refusal.TRANSIENT if self.transient_regex.search(str(exc)) else Refusal.FINAL
            return [SubmitResult(key, None, f"sbatch refused {batch.path}: {exc}", refusal) for key in keys]
        match = self.submit_regex.match(output.strip())
        if match is None:
            return [SubmitResult(key, None, f"unexpected sbatch output {output!r}") for key in keys]
        array_id = match.group(1)
        if len(keys) == 1 and not self.is_array_script(batch.path):
            return [SubmitResult(keys[0], array_id)]
        return [SubmitResult(key, f"{array_id}_{index}") for index, key in enumerate(keys)]

    @staticmethod
    def is_array_script(path: str) -> bool:
        with open(path) as f:
            return any(line.startswith("#SBATCH --array=") for line in f)

    # -- query ---------------------------------------------------------------------

    def query(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        states = {job_id: JobState(JobStatus.UNKNOWN) for job_id in job_ids}
        # querying the array id returns all of its elements: one squeue argument per array
        for ids in chunks(sorted({base_id(job_id) for job_id in job_ids}), self.ids_per_call):
            result = self.runner.run([*self.squeue_command, f"--jobs={','.join(ids)}"], check=False)
            if result.returncode != 0 and "Invalid job id" not in result.stderr:
                raise CommandError(f"squeue failed: {result.stderr.strip()}", list(result.argv),
                                   result.returncode, result.stderr)
            found = self.parse_squeue(result.stdout)
            for job_id in states:
                # an element missing from the listing may be covered by its array's own record
                state = found.get(job_id) or found.get(base_id(job_id))
                if state is not None:
                    states[job_id] = state
        forgotten = [job_id for job_id, state in states.items() if state.status is JobStatus.UNKNOWN]
        if forgotten and self.accounting():
            states.update(self.query_sacct(forgotten))
        if any(state.status is JobStatus.FAILED and state.exit_code is None for state in states.values()):
            codes = self.parse_scontrol(self.runner.run(self.scontrol_jobs_command, check=False).stdout)
            for job_id, state in states.items():
                code = codes.get(job_id) or codes.get(base_id(job_id))
                if state.status is JobStatus.FAILED and state.exit_code is None and code is not None:
                    states[job_id] = JobState(state.status, code.exit_code, state.reason)
        return states

    def query_sacct(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        found: dict[str, JobState] = {}
        for ids in chunks(list(job_ids), self.ids_per_call):
            result = self.runner.run([*self.sacct_command, f"--jobs={','.join(ids)}"], check=False)
            found.update({k: v for k, v in self.parse_sacct(result.stdout).items() if k in job_ids})
        return found

    @classmethod
    def parse_squeue(cls, text: str) -> dict[str, JobState]:
        """Lines of ``squeue --format=%i|%T|%r`` -> states (no exit codes in squeue)."""
        states = {}
        for line in text.splitlines():
            match = cls.job_line_regex.match(line.strip())
            if match:
                job_id, slurm_state, reason = match.groups()
                states[job_id] = JobState(cls.map_status(slurm_state), None, reason.strip())
        return states

    @classmethod
    def parse_sacct(cls, text: str) -> dict[str, JobState]:
        """Lines of ``sacct --parsable2 --format=JobID,State,ExitCode``; job steps are skipped."""
        states = {}
        for line in text.splitlines():
            parts = line.strip().split("|")
            if len(parts) < 3 or "." in parts[0]:
                continue  # "123.batch", "123.extern": steps of a job, not jobs
            # "CANCELLED by 0": the state is the first word
            slurm_state = parts[1].split()[0] if parts[1].strip() else ""
            states[parts[0]] = JobState(cls.map_status(slurm_state), exit_code_of(parts[2]), parts[1])
        return states

    @classmethod
    def parse_scontrol(cls, text: str) -> dict[str, JobState]:
        """``scontrol --oneliner show job`` -> state and exit code per job id (``A_i`` for array elements)."""
        states = {}
        for line in text.splitlines():
            fields = dict(cls.scontrol_field_regex.findall(line))
            if "JobId" not in fields or "JobState" not in fields:
                continue
            task_id = fields.get("ArrayTaskId", "")
            is_element = task_id.isdigit() and int(task_id) < NO_VAL  # NO_VAL: the array as a whole
            job_id = f"{fields['ArrayJobId']}_{task_id}" if is_element else fields["JobId"]
            states[job_id] = JobState(cls.map_status(fields["JobState"]),
                                      exit_code_of(fields.get("ExitCode", "")), fields.get("Reason", ""))
        return states

    @classmethod
    def parse_config(cls, text: str) -> dict[str, str]:
        return {key: value for key, value in cls.config_regex.findall(text)}

    @classmethod
    def map_status(cls, slurm_state: str) -> JobStatus:
        return cls.status_map.get(slurm_state.rstrip("+"), JobStatus.UNKNOWN)

    # -- cancel, find --------------------------------------------------------------

    def cancel(self, job_ids: Sequence[str]) -> None:
        for ids in chunks(list(job_ids), self.ids_per_call):
            # jobs that ended meanwhile make scancel complain; that is not a failure to cancel
            result = self.runner.run([*self.cancel_command, *ids], check=False)
            if result.returncode != 0:
                logger.warning("scancel reported: %s", result.stderr.strip())

    def find(self, names: Sequence[str]) -> dict[str, dict[int, str]]:
        found: dict[str, dict[int, str]] = {}
        for group in chunks(list(names), self.ids_per_call):
            result = self.runner.run([*self.find_command, f"--name={','.join(group)}"], check=False)
            for line in result.stdout.splitlines():
                job_id, _, name = line.strip().partition("|")
                _, sep, index = job_id.partition("_")
                if name in group and (not sep or index.isdigit()):  # "12" alone is the batch's only job
                    found.setdefault(name, {})[int(index) if sep else 0] = job_id
        return found


def base_id(job_id: str) -> str:
    """``"12_3"`` -> ``"12"``: squeue lists every element of an array given the array's id."""
    return job_id.partition("_")[0]


def exit_code_of(text: str) -> int | None:
    """Slurm's ``ExitCode=rc:signal``; a signal ``s`` counts as ``128 + s`` like in a shell."""
    rc, _, signal = text.strip().partition(":")
    if not rc.isdigit():
        return None
    return 128 + int(signal) if signal.isdigit() and int(signal) and not int(rc) else int(rc)


def chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
