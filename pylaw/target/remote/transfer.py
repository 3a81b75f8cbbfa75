"""Batch transfers: many files in parallel, one result per file, retries of the failed ones only.

:func:`copy_many` runs rounds: each round transfers every pending file once, in a thread
pool (each thread has its own GFAL2 context), and keeps the files that failed with a
transient error for the next round, after the retry policy's back-off. Files that
succeeded are never transferred again; files that failed for good (missing source,
permission denied) are reported at once. Uploads stay atomic (temporary name + rename),
and each destination directory is created once per batch, not once per file.

:func:`fetch` and :func:`upload` do the same for targets and collections of targets.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import posixpath
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any

from pylaw.errors import RemoteError, TransferFailedError, TransientRemoteError
from pylaw.target.remote.publish import StagedUpload
from pylaw.target.remote.retry import RetryPolicy

if TYPE_CHECKING:
    from pylaw.target.remote.filesystem import RemoteFileSystem

DIRECTIONS = ("put", "get", "remote")


@dataclasses.dataclass
class TransferResult:
    """The outcome of one file of a batch: ``error`` is None when ``ok``."""

    source: str
    destination: str
    ok: bool = False
    error: BaseException | None = None
    attempts: int = 0
    seconds: float = 0.0


class ProgressBar:
    """A one-line progress bar, drawn only when ``stream`` is a terminal (never in logs)."""

    def __init__(self, total: int, label: str, stream: IO[str] | None = None,
                 enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total, self.label, self.done, self.failed = total, label, 0, 0
        self._lock = threading.Lock()

    def advance(self, ok: bool) -> None:
        with self._lock:
            self.done += ok
            self.failed += not ok
            self._draw()

    def _draw(self) -> None:
        if not self.enabled or not self.total:
            return
        width = 30
        filled = int(width * self.done / self.total)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                          f"{self.done}/{self.total}" + (f", {self.failed} failed" if self.failed else ""))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.total:
            self.stream.write("\n")
            self.stream.flush()


def _single_attempt(fs: RemoteFileSystem) -> RemoteFileSystem:
    """A view of ``fs`` that tries each base once: the batch's rounds do the retrying."""
    clone = copy.copy(fs)
    clone.retry = dataclasses.replace(fs.retry, attempts=1)
    return clone


def _prepare(fs: RemoteFileSystem, results: list[TransferResult], direction: str) -> None:
    """Create every destination directory once (remote ones with the full retry policy)."""
    if direction == "get":
        for directory in {os.path.dirname(os.path.abspath(r.destination)) for r in results}:
            os.makedirs(directory, exist_ok=True)
    elif direction == "put":
        for directory in sorted({posixpath.dirname(fs.normpath(r.destination)) for r in results}):
            fs.mkdir(directory)


def _operation(fs: RemoteFileSystem, direction: str) -> Callable[[str, str], Any]:
    return fs.get if direction == "get" else fs.copy


class PutRound:
    """One round of a batch upload: parallel steps, sizes checked by directory listings.

    Uploading files one by one costs a stat of each temporary file and of each published
    file; here both checks are one listing (with sizes) per directory: checksum and copy
    every file to a fresh temporary name, list, compare the storage's checksum of each
    temporary file (where it reports one: one request per file, in parallel), rename the
    good ones into place, list again, and write the checksum records if configured. A file
    failing any step keeps its error (transient ones are retried in the next round; a
    checksum mismatch is final, and its temporary file is removed).
    """

    def __init__(self, fs: RemoteFileSystem, results: list[TransferResult], pool: ThreadPoolExecutor) -> None:
        self.fs, self.once, self.results, self.pool = fs, _single_attempt(fs), results, pool
        self.uploads: dict[int, StagedUpload] = {}

    def run(self, indices: list[int]) -> None:
        for i in indices:
            self.results[i].attempts += 1
        uploaded = self._step(self._upload, indices)
        checked = self._check_sizes(uploaded, final=False)
        if self.fs.reports_checksums():
            checked = self._step(lambda i: self.uploads[i].check_checksum(), checked)
        published = self._step(self._publish, checked)
        complete = self._check_sizes(published, final=True)
        if self.fs.record_checksums:
            complete = self._step(self._record, complete)
        for i in complete:
            self.results[i].ok, self.results[i].error = True, None
        self._step(lambda i: self.uploads[i].discard(), [i for i in self.uploads if not self.results[i].ok])

    def _step(self, call: Callable[[int], None], indices: list[int]) -> list[int]:
        """``call`` on each index in parallel; returns those that succeeded, records the errors."""
        def attempt(i: int) -> bool:
            start = time.monotonic()
            try:
                call(i)
                return True
            except (RemoteError, OSError) as exc:
                self.results[i].error = exc
                return False
            finally:
                self.results[i].seconds += time.monotonic() - start
        return [i for i, ok in zip(indices, self.pool.map(attempt, indices), strict=True) if ok]

    def _upload(self, i: int) -> None:
        result = self.results[i]
        upload = self.uploads[i] = StagedUpload(self.once, result.destination, os.stat(result.source).st_size,
                                                self.fs.local_digest(result.source),
                                                f"upload of {result.source} to {result.destination!r}")
        source = "file://" + os.path.abspath(result.source)
        upload.send(lambda base: source)

    def _publish(self, i: int) -> None:
        self.uploads[i].publish()
        if self.fs.cache is not None:
            self.fs.cache.invalidate(self.fs, self.results[i].destination)

    def _record(self, i: int) -> None:
        upload = self.uploads[i]
        if upload.digest is not None and upload.size is not None:
            self.once.write_record(upload.path, upload.size, upload.digest)

    def _check_sizes(self, indices: list[int], final: bool) -> list[int]:
        """Indices whose temporary (or ``final``) files have the expected size, with one listing per directory."""
        paths = {i: self.uploads[i].path if final else self.uploads[i].tmp for i in indices}
        by_dir: dict[str, list[int]] = {}
        for i in indices:
            by_dir.setdefault(posixpath.dirname(paths[i]), []).append(i)
        good = []
        for directory, members in by_dir.items():
            try:
                listing = self.fs.listdir_stat(directory)
            except RemoteError as exc:
                for i in members:
                    self.results[i].error = exc
                continue
            for i in members:
                error = self.uploads[i].size_error(paths[i], listing.get(posixpath.basename(paths[i])))
                if error is None:
                    good.append(i)
                else:
                    self.results[i].error = error
        return good


def copy_many(fs: RemoteFileSystem, pairs: Iterable[tuple[str, str]], direction: str = "put",
              parallel: int = 8, progress: bool | None = None, raise_on_failure: bool = True,
              retry: RetryPolicy | None = None) -> list[TransferResult]:
    """Transfer ``(source, destination)`` pairs in parallel; one :class:`TransferResult` each, in order.

    ``direction`` is ``put`` (local path -> path on ``fs``), ``get`` (path on ``fs`` ->
    local path) or ``remote`` (path -> path, both on ``fs``). ``progress`` draws a bar on
    stderr (default: only if stderr is a terminal). With ``raise_on_failure``, files that
    still failed after ``retry.attempts`` rounds raise :class:`~pylaw.errors.TransferFailedError`
    (which carries all results) after every other file was transferred.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"copy_many direction must be one of {DIRECTIONS}, not {direction!r}")
    policy = retry or fs.retry
    results = [TransferResult(str(source), str(destination)) for source, destination in pairs]
    if not results:
        return results
    _prepare(fs, results, direction)
    operation = _operation(_single_attempt(fs), direction)
    done: set[int] = set()
    bar = ProgressBar(len(results), f"{direction} {fs.name}", enabled=progress)
    pending = list(range(len(results)))

    def transfer(index: int) -> None:
        result = results[index]
        result.attempts += 1
        start = time.monotonic()
        try:
            operation(result.source, result.destination)
            result.ok, result.error = True, None
        except (RemoteError, OSError) as exc:
            result.error = exc
        finally:
            result.seconds += time.monotonic() - start

    def report(indices: list[int]) -> None:
        for i in indices:
            result = results[i]
            final = result.ok or not isinstance(result.error, TransientRemoteError)
            if i not in done and (final or result.attempts >= policy.attempts):
                done.add(i)
                bar.advance(result.ok)

    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="pylaw-transfer") as pool:
        for round_number in range(1, policy.attempts + 1):
            if round_number > 1:
                time.sleep(policy.backoff(round_number))
            if direction == "put":
                PutRound(fs, results, pool).run(pending)
            else:
                list(pool.map(transfer, pending))
            report(pending)
            pending = [i for i in pending if not results[i].ok and isinstance(results[i].error, TransientRemoteError)]
            if not pending:
                break
    bar.close()
    failed = [r for r in results if not r.ok]
    if failed and raise_on_failure:
        sample = "; ".join(f"{r.source} -> {r.destination}: {r.error}" for r in failed[:3])
        raise TransferFailedError(f"{len(failed)} of {len(results)} transfers ({direction}) on {fs.name!r} "
                                  f"failed after up to {policy.attempts} attempts each: {sample}", results)
    return results


def _remote_leaves(struct: Any) -> list[Any]:
    from pylaw.target.collection import iter_leaves
    from pylaw.target.remote.target import RemoteFileTarget

    leaves = list(iter_leaves(struct))
    foreign = [leaf for leaf in leaves if not isinstance(leaf, RemoteFileTarget)]
    if foreign:
        raise TypeError(f"fetch() handles remote file targets only, got {foreign[:3]}")
    return leaves


def fetch(struct: Any, local_dir: str, parallel: int | None = None, progress: bool | None = None,
          only_existing: bool = True) -> list[TransferResult]:
    """Download the remote files of a target, a collection or a nested structure into ``local_dir``.

    Each file lands at ``local_dir/<its remote path>``, so files of different directories
    never collide. With ``only_existing``, missing files are skipped (one listing per
    directory decides which exist).
    """
    from pylaw.target.collection import existing_leaves

    leaves = _remote_leaves(struct)
    if only_existing:
        leaves = [leaf for leaf, ok in zip(leaves, existing_leaves(leaves), strict=True) if ok]
    results: list[TransferResult] = []
    for fs, group in _by_filesystem(leaves).items():
        pairs = [(leaf.path, os.path.join(local_dir, leaf.path.lstrip("/"))) for leaf in group]
        results += fs.copy_many(pairs, "get", parallel=parallel, progress=progress)
    return results


def upload(pairs: Iterable[tuple[str, Any]], parallel: int | None = None,
           progress: bool | None = None) -> list[TransferResult]:
    """Upload ``(local path, RemoteFileTarget)`` pairs, batched per storage element."""
    by_fs: dict[Any, list[tuple[str, str]]] = {}
    for local, target in pairs:
        by_fs.setdefault(target.fs, []).append((local, target.path))
    results: list[TransferResult] = []
    for fs, group in by_fs.items():
        results += fs.copy_many(group, "put", parallel=parallel, progress=progress)
    return results


def _by_filesystem(leaves: list[Any]) -> dict[Any, list[Any]]:
    groups: dict[Any, list[Any]] = {}
    for leaf in leaves:
        groups.setdefault(leaf.fs, []).append(leaf)
    return groups
