"""Reading what the CREAM command line (``glite-ce-*``) prints.

The CLI is made for people: its answers are text, and errors are text too, sometimes
with exit code 0. These functions turn that text into data and are tested on output of
the real CLI copied from its documentation (``tests/job/data/glite/``).

Formats (cream-cli 1.x):

- ``glite-ce-job-submit`` prints the new job's id as the last line, a URL
  ``https://<host>:<port>/<id>``; with ``-d`` debug lines come first.
- ``glite-ce-job-status`` prints one block per job, ``****** JobID=[<id>]`` followed by
  ``Name = [value]`` fields (``Status`` at level 0, ``Current Status`` at level 1 and 2,
  which also list the status history; a value may span lines, e.g. a ``FailureReason``).
- Per-job errors look like ``... JobID [<id>]: MethodName=[...] ErrorCode=[...]
  Description=[...] FaultCause=[...]``; errors of the whole call lack the ``JobID`` part.
- ``glite-ce-job-output`` says ``For JobID [<id>] output will be stored in the dir <dir>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

#: the first line of a job id file (``-o FILE`` of submit, ``-i FILE`` of the others)
ID_FILE_HEADER = "##CREAMJOBS##"

JOB_ID = re.compile(r"^https?://[^\s/\[\]]+:\d+/[^\s\[\]]+$", re.M)
BLOCK = re.compile(r"^\s*\*{6}\s*JobID=\[(?P<id>[^\]]+)\]", re.M)
FIELD = re.compile(r"^[ \t]*(?P<key>[A-Za-z][A-Za-z ]*?)[ \t]*=[ \t]*\[(?P<value>[^\]]*)\]", re.M)
#: where the current-state part of a level-1/2 block ends
HISTORY = re.compile(r"^\s*(Job status changes:|Issued Commands:)", re.M)
JOB_FAULT = re.compile(r"JobID \[(?P<id>[^\]]+)\]:\s*(?P<fault>MethodName=.*)")
FAULT = re.compile(r"MethodName=\[|ErrorCode=\[|FaultCause=\[|\b(ERROR|FATAL)\b")
DESCRIPTION = re.compile(r"Description=\[(?P<text>[^\]]*)\]")
DELEGATED = re.compile(r"delegation id \[(?P<id>[^\]]+)\]\s+succe", re.I)  # the CLI writes "succesfully" too
OUTPUT_DIR = re.compile(r"For JobID \[(?P<id>[^\]]+)\]\s+output will be stored in the dir (?P<dir>\S+)")


@dataclass
class StatusBlock:
    """One job of a ``glite-ce-job-status`` answer: its current fields (no history)."""

    job_id: str
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.fields.get("Current Status") or self.fields.get("Status", "")

    @property
    def exit_code(self) -> int | None:
        value = self.fields.get("ExitCode", "").strip()
        return int(value) if re.fullmatch(r"-?\d+", value) else None  # "", "N/A"

    @property
    def reason(self) -> str:
        return " ".join((self.fields.get("FailureReason") or self.fields.get("Description", "")).split())


def job_ids(text: str) -> list[str]:
    """Every job id line of ``text`` (a submit answer, an id file), in order."""
    return JOB_ID.findall(text)


def submitted_id(text: str) -> str | None:
    """The job id a ``glite-ce-job-submit`` answer ends with, if any."""
    ids = job_ids(text)
    return ids[-1] if ids else None


def status_blocks(text: str) -> dict[str, StatusBlock]:
    """The jobs of a ``glite-ce-job-status`` answer (any verbosity level), by id."""
    starts = list(BLOCK.finditer(text))
    blocks = {}
    ends = [m.start() for m in starts[1:]] + ([len(text)] if starts else [])
    for match, end in zip(starts, ends, strict=True):
        body = text[match.end():end]
        history = HISTORY.search(body)
        current = body[:history.start()] if history else body
        block = StatusBlock(match["id"].strip())
        for item in FIELD.finditer(current):
            block.fields.setdefault(" ".join(item["key"].split()), item["value"])
        blocks[block.job_id] = block
    return blocks


def job_faults(text: str) -> dict[str, str]:
    """Per-job errors (``JobID [<id>]: MethodName=...``) by id: the ``Description``, else the whole fault."""
    faults = {}
    for match in JOB_FAULT.finditer(text):
        description = DESCRIPTION.search(match["fault"])
        faults[match["id"].strip()] = description["text"] if description else match["fault"].strip()
    return faults


def global_fault(text: str) -> str:
    """The lines of ``text`` that report an error of the whole call (not of one job); empty if none."""
    lines = [line.strip() for line in text.splitlines() if FAULT.search(line) and not JOB_FAULT.search(line)]
    return " ".join(lines)


def delegation_id(text: str) -> str | None:
    """The id a ``glite-ce-delegate-proxy`` answer confirms, if it does."""
    match = DELEGATED.search(" ".join(text.split()))
    return match["id"] if match else None


def output_dirs(text: str) -> dict[str, str]:
    """``glite-ce-job-output``: where the sandbox of each job went, by id."""
    return {m["id"].strip(): m["dir"] for m in OUTPUT_DIR.finditer(text)}


def sandbox_name(job_id: str) -> str:
    """The directory name ``glite-ce-job-output`` gives a job's sandbox: ``<host>_<port>_<id path>``."""
    parts = urlsplit(job_id)
    return f"{parts.hostname}_{parts.port}_{parts.path.strip('/').replace('/', '_')}"


def id_file(ids: list[str]) -> str:
    """The text of a job id file (``-i FILE``)."""
    return "\n".join([ID_FILE_HEADER, *ids]) + "\n"
