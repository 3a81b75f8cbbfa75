"""Batch transfers: many files in parallel, one result per file, retries of the failed ones only.

:func:`copy_many` runs rounds: each round transfers every pending file once, in a thread
pool (each thread has its own GFAL2 context), and keeps the files that failed with a
transient error for the next round, after the retry policy's back-off. Files that
succeeded are never transferred again; files that failed for good (missing source,
permission denied) are reported at once. Uploads stay atomic (temporary name + rename),
and each destination directory is created once per batch, not once per file.

What a failure does to the rest of the batch is ``on_error``'s choice: ``raise`` (the
default) transfers every other file and then raises
:class:`~pylaw.errors.TransferFailedError` with all results; ``collect`` returns the
results, failures included, without raising; ``stop`` starts no new file once one has
failed for good (the files already under way finish; the others are marked ``skipped``)
and raises. Progress goes to a callback (:mod:`pylaw.target.remote.progress`).

:func:`fetch` and :func:`upload` do the same for targets and collections of targets.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import posixpath
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pylaw.errors import RemoteError, TransferFailedError, TransientRemoteError
from pylaw.target.remote.interface import RemoteStat
from pylaw.target.remote.progress import BatchProgress, ProgressCallback, make_callback, reporting_bytes
from pylaw.target.remote.publish import StagedUpload
from pylaw.target.remote.retry import RetryPolicy

if TYPE_CHECKING:
    from pylaw.target.remote.filesystem import RemoteFileSystem

DIRECTIONS = ("put", "get", "remote")


ON_ERROR = ("raise", "collect", "stop")


@dataclasses.dataclass
class TransferResult:
    """The outcome of one file of a batch: ``error`` is None when ``ok``, and for a file ``skipped``
    because ``on_error="stop"`` stopped the batch first."""

    source: str
    destination: str
    ok: bool = False
    error: BaseException | None = None
    attempts: int = 0
    seconds: float = 0.0
    skipped: bool = False


class _NotStartedError(Exception):
    """A file the stopped batch does not start."""


class Batch:
    """The state one :func:`copy_many` call shares between its rounds and threads."""

    def __init__(self, results: list[TransferResult], direction: str, policy: RetryPolicy,
                 progress: BatchProgress, on_error: str) -> None:
        self.results, self.direction, self.policy = results, direction, policy
        self.progress, self.on_error = progress, on_error
        self.stopped = threading.Event()
        self._reported: set[int] = set()

    def begin(self, i: int) -> None:
        """File ``i`` starts an attempt: its start is reported, or _NotStartedError once the batch stopped."""
        result = self.results[i]
        if self.stopped.is_set():
            result.skipped = True
            raise _NotStartedError
        self.progress.started(i, result.source, result.destination, self._known_size(i))

    def bytes_of(self, i: int) -> contextlib.AbstractContextManager[None]:
        """The block in which file ``i``'s copy reports the bytes it moves (events between start and end)."""
        result, size = self.results[i], self._known_size(i)
        return reporting_bytes(lambda done: self.progress.moved(i, result.source, result.destination, done, size))

    def _known_size(self, i: int) -> int | None:
        """File ``i``'s size before its transfer: that of the local source of an upload, else unknown."""
        source = self.results[i].source
        return os.path.getsize(source) if self.direction == "put" and os.path.exists(source) else None

    def final(self, i: int) -> bool:
        """Whether file ``i`` will not be tried again."""
        result = self.results[i]
        return result.ok or result.skipped or not isinstance(result.error, TransientRemoteError) \
            or result.attempts >= self.policy.attempts

    def failed(self, i: int, error: BaseException) -> None:
        self.results[i].error = error
        if self.on_error == "stop" and self.final(i):
            self.stopped.set()

    def report(self, indices: list[int]) -> None:
        """Report the files among ``indices`` that became final."""
        for i in indices:
            result = self.results[i]
            if i in self._reported or result.skipped or not self.final(i):
                continue
            self._reported.add(i)
            local = result.source if self.direction == "put" else result.destination
            size = os.path.getsize(local) if self.direction != "remote" and os.path.isfile(local) else None
            self.progress.finished(result.source, result.destination, result.ok, size)


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

    def __init__(self, fs: RemoteFileSystem, batch: Batch, pool: ThreadPoolExecutor) -> None:
        self.fs, self.once, self.batch, self.pool = fs, _single_attempt(fs), batch, pool
        self.results = batch.results
        self.uploads: dict[int, StagedUpload] = {}

    def run(self, indices: list[int]) -> None:
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
            except _NotStartedError:
                return False
            except (RemoteError, OSError) as exc:
                self.batch.failed(i, exc)
                return False
            finally:
                self.results[i].seconds += time.monotonic() - start
        return [i for i, ok in zip(indices, self.pool.map(attempt, indices), strict=True) if ok]

    def _upload(self, i: int) -> None:
        self.batch.begin(i)
        result = self.results[i]
        result.attempts += 1
        upload = self.uploads[i] = StagedUpload(self.once, result.destination, os.stat(result.source).st_size,
                                                self.fs.local_digest(result.source),
                                                f"upload of {result.source} to {result.destination!r}")
        source = "file://" + os.path.abspath(result.source)
        with self.batch.bytes_of(i):
            upload.send(lambda base: source)

    def _publish(self, i: int) -> None:
        self.uploads[i].publish()
        if self.fs.cache is not None:
            self.fs.cache.invalidate(self.fs, self.results[i].destination)

    def _record(self, i: int) -> None:
        upload = self.uploads[i]
        if upload.digest is not None and upload.size is not None:
            self.once.write_record(upload.path, upload.size, upload.digest)

    def _stat_hidden(self, path: str) -> RemoteStat | None:
        """The stat of a temporary file missing from its directory's listing, or None.

        nginx's WebDAV modules leave names starting with a dot out of PROPFIND answers, so
        the hidden temporary files are stat-ed one by one there.
        """
        try:
            return self.once.stat(path)
        except RemoteError:
            return None

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
                    self.batch.failed(i, exc)
                continue
            for i in members:
                found = listing.get(posixpath.basename(paths[i]))
                if found is None and not final:
                    found = self._stat_hidden(paths[i])
                error = self.uploads[i].size_error(paths[i], found)
                if error is None:
                    good.append(i)
                else:
                    self.batch.failed(i, error)
        return good


def copy_many(fs: RemoteFileSystem, pairs: Iterable[tuple[str, str]], direction: str = "put",
              parallel: int = 8, progress: bool | ProgressCallback | None = None, on_error: str = "raise",
              retry: RetryPolicy | None = None) -> list[TransferResult]:
    """Transfer ``(source, destination)`` pairs in parallel; one :class:`TransferResult` each, in order.

    ``direction`` is ``put`` (local path -> path on ``fs``), ``get`` (path on ``fs`` ->
    local path) or ``remote`` (path -> path, both on ``fs``). ``progress`` is a callback
    (:mod:`pylaw.target.remote.progress`), or True/False/None for pylaw's bar on stderr
    (None: only if stderr is a terminal). Files that fail with a transient error are
    retried in later rounds, up to ``retry.attempts``; ``on_error`` (``raise``,
    ``collect``, ``stop``: see the module docstring) decides what failures do.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"copy_many direction must be one of {DIRECTIONS}, not {direction!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"copy_many on_error must be one of {ON_ERROR}, not {on_error!r}")
    policy = retry or fs.retry
    results = [TransferResult(str(source), str(destination)) for source, destination in pairs]
    if not results:
        return results
    _prepare(fs, results, direction)
    callback, bar = make_callback(progress)
    batch = Batch(results, direction, policy, BatchProgress(callback, len(results), f"{direction} {fs.name}"),
                  on_error)
    try:
        _run_rounds(fs, batch, parallel)
    finally:
        if bar is not None:
            bar.close()
    failed = [r for r in results if not r.ok and not r.skipped]
    if failed and on_error != "collect":
        skipped = sum(r.skipped for r in results)
        sample = "; ".join(f"{r.source} -> {r.destination}: {r.error}" for r in failed[:3])
        stop = f"; stopped at the first failure, {skipped} not started" if on_error == "stop" else ""
        raise TransferFailedError(f"{len(failed)} of {len(results)} transfers ({direction}) on {fs.name!r} "
                                  f"failed after up to {policy.attempts} attempts each{stop}: {sample}", results)
    return results


def _run_rounds(fs: RemoteFileSystem, batch: Batch, parallel: int) -> None:
    """Transfer the pending files once per round until none is pending or the attempts are used up."""
    results, policy = batch.results, batch.policy
    operation = _operation(_single_attempt(fs), batch.direction)

    def transfer(index: int) -> None:
        result = results[index]
        try:
            batch.begin(index)
        except _NotStartedError:
            return
        result.attempts += 1
        start = time.monotonic()
        try:
            with batch.bytes_of(index):
                operation(result.source, result.destination)
            result.ok, result.error = True, None
        except (RemoteError, OSError) as exc:
            batch.failed(index, exc)
        finally:
            result.seconds += time.monotonic() - start

    pending = list(range(len(results)))
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="pylaw-transfer") as pool:
        for round_number in range(1, policy.attempts + 1):
            if round_number > 1:
                time.sleep(policy.backoff(round_number))
            if batch.direction == "put":
                PutRound(fs, batch, pool).run(pending)
            else:
                list(pool.map(transfer, pending))
            batch.report(pending)
            pending = [i for i in pending if not batch.final(i)]
            if not pending:
                break


def _remote_leaves(struct: Any) -> list[Any]:
    from pylaw.target.collection import iter_leaves
    from pylaw.target.remote.target import RemoteFileTarget

    leaves = list(iter_leaves(struct))
    foreign = [leaf for leaf in leaves if not isinstance(leaf, RemoteFileTarget)]
    if foreign:
        raise TypeError(f"fetch() handles remote file targets only, got {foreign[:3]}")
    return leaves


def fetch(struct: Any, local_dir: str, parallel: int | None = None,
          progress: bool | ProgressCallback | None = None, only_existing: bool = True,
          on_error: str = "raise") -> list[TransferResult]:
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
        results += fs.copy_many(pairs, "get", parallel=parallel, progress=progress, on_error=on_error)
    return results


def upload(pairs: Iterable[tuple[str, Any]], parallel: int | None = None,
           progress: bool | ProgressCallback | None = None, on_error: str = "raise") -> list[TransferResult]:
    """Upload ``(local path, RemoteFileTarget)`` pairs, batched per storage element."""
    by_fs: dict[Any, list[tuple[str, str]]] = {}
    for local, target in pairs:
        by_fs.setdefault(target.fs, []).append((local, target.path))
    results: list[TransferResult] = []
    for fs, group in by_fs.items():
        results += fs.copy_many(group, "put", parallel=parallel, progress=progress, on_error=on_error)
    return results


def _by_filesystem(leaves: list[Any]) -> dict[Any, list[Any]]:
    groups: dict[Any, list[Any]] = {}
    for leaf in leaves:
        groups.setdefault(leaf.fs, []).append(leaf)
    return groups
