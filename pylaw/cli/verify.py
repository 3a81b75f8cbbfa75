"""``pylaw verify MODULE TASK [params] [--download]``: a task's remote outputs against their records.

Uploads to a storage element with ``record_checksums = true`` leave, next to each file,
a record of its size and checksum (:meth:`~pylaw.target.remote.filesystem.RemoteFileSystem.write_record`).
Verification compares each remote output of the task (a workflow: every branch's) with
its record: the size by a stat, the checksum as the storage reports it, or, with
``download``, as computed from a fresh download (for storage that reports none). Nothing
runs; the task is only built.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import luigi
from luigi.cmdline_parser import CmdlineParser

from pylaw.errors import RemoteFileNotFoundError, UsageError
from pylaw.target.collection import iter_leaves
from pylaw.target.remote.checksum import ALGORITHMS, file_checksums
from pylaw.target.remote.target import RemoteFileTarget

#: statuses that make ``pylaw verify`` exit 1
FAILING = ("mismatch", "missing")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome for one output: ``status`` is ok, mismatch, missing, unrecorded or unchecked."""

    target: RemoteFileTarget
    status: str
    detail: str = ""


def build_task(cls: type, params: Sequence[str]) -> Any:
    """An instance of ``cls`` from command-line parameters, as ``pyl`` would build it."""
    try:
        with CmdlineParser.global_instance([cls.get_task_family(), *params]) as parser:  # type: ignore[attr-defined]
            return parser.get_task_obj()
    except SystemExit as exc:  # argparse has printed what it did not understand
        raise UsageError(f"cannot build {cls.__name__}: unknown parameters {' '.join(params)!r}") from exc
    except (luigi.parameter.ParameterException, ValueError) as exc:
        raise UsageError(f"cannot build {cls.__name__}: {exc}; give its parameters after the task name "
                         "(pylaw verify MODULE TASK --param value ...)") from exc


def remote_outputs(task: Any) -> list[RemoteFileTarget]:
    """The remote file targets among the task's outputs (a workflow's: its branches')."""
    return [leaf for leaf in iter_leaves(task.output()) if isinstance(leaf, RemoteFileTarget)]


def verify_target(target: RemoteFileTarget, download: bool = False) -> Verdict:
    """Compare one remote file with its checksum record."""
    fs = target.fs
    try:
        info = fs.stat(target.path)
    except RemoteFileNotFoundError:
        return Verdict(target, "missing", "no file on the storage")
    record = fs.read_record(target.path)
    if record is None:
        return Verdict(target, "unrecorded", "no checksum record (uploaded without record_checksums = true?)")
    if record.get("size") != info.size:
        return Verdict(target, "mismatch", f"size {info.size}, recorded {record.get('size')}")
    algorithm = next((name for name in ALGORITHMS if name in record), None)
    if algorithm is None:
        return Verdict(target, "unrecorded", "the record holds no known checksum")
    actual = _downloaded_checksum(target, algorithm) if download else fs.checksum(target.path, algorithm)
    if actual is None:
        return Verdict(target, "unchecked", f"size ok; the storage reports no {algorithm} (use --download)")
    if actual != record[algorithm]:
        how = "computed from a download" if download else "reported by the storage"
        return Verdict(target, "mismatch", f"{algorithm} {actual} {how}, recorded {record[algorithm]}")
    return Verdict(target, "ok", f"{algorithm} {actual}")


def _downloaded_checksum(target: RemoteFileTarget, algorithm: str) -> str:
    with tempfile.TemporaryDirectory(prefix="pylaw-verify-") as workdir:
        local = os.path.join(workdir, target.basename)
        target.fs.get(target.path, local, verify=False)  # the point is to check the data, not trust the server
        return file_checksums(local, (algorithm,)).hexdigest(algorithm)


def verify(task: Any, download: bool = False, out: IO[str] | None = None, parallel: int = 8) -> int:
    """Print one line per remote output and a summary; returns 1 if any output mismatches or is missing."""
    targets = remote_outputs(task)
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="pylaw-verify") as pool:
        verdicts = list(pool.map(lambda target: verify_target(target, download), targets))
    counts: dict[str, int] = {}
    for verdict in verdicts:
        counts[verdict.status] = counts.get(verdict.status, 0) + 1
        print(f"{verdict.status:10s} {verdict.target.fs_name}:{verdict.target.path}  {verdict.detail}", file=out)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no remote outputs"
    print(f"{task.task_id}: {len(verdicts)} remote outputs: {summary}", file=out)
    return 1 if any(counts.get(status) for status in FAILING) else 0
