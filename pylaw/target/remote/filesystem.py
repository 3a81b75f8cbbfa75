"""RemoteFileSystem: one storage element, with base-URL fallback, retries and atomic transfers.

Paths are relative to the storage element's base URL(s) (``/store/a.root`` and
``store/a.root`` are the same). Each operation is tried on the configured bases in order;
a transient failure moves on to the next base, and when every base failed the policy's
back-off is slept before the next round. Non-transient errors are raised at once.

Uploads are atomic: the data goes to a hidden temporary name in the destination's
directory, its size is checked, and only then is it renamed to the final name, so a
failed or interrupted upload never shows a file under the final name. Downloads are
atomic on the local side in the same way.

Validation by checksum (``checksum`` = the algorithm, or None): where the storage reports
checksums, an upload compares the storage's checksum of the *temporary* file with the
local one before the rename, so a mismatch (:class:`~pylaw.errors.RemoteChecksumError`)
never shows under the final name; the temporary file is removed. A download compares the
remote checksum with the local temporary file before renaming it into place. Storage
that cannot report one (the first "cannot" is remembered per base and algorithm) is
checked by size only, and no local checksum is computed for it.

Where the local checksum comes from, and what it costs: a file written through
``target.open("w")`` is checksummed as it is written (no extra read); any other upload
reads the local file once, in blocks, before sending it; a download is checksummed by one
read of the finished local temporary file. That read is the one unavoidable second pass:
the interfaces copy file to file (GFAL2 and XrdCl write the local file themselves), so
the bytes never pass through Python on their way in.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, TypeVar

from pylaw.errors import (
    PathEscapeError,
    RemoteChecksumError,
    RemoteFileNotFoundError,
    RemoteNotSupportedError,
    TransientRemoteError,
)
from pylaw.target.publish import staged
from pylaw.target.remote.checksum import Checksummer, check_algorithm, file_checksums
from pylaw.target.remote.config import StorageConfig
from pylaw.target.remote.interface import FileInterface, RemoteStat, redact
from pylaw.target.remote.publish import StagedUpload
from pylaw.target.remote.retry import RetryPolicy
from pylaw.target.remote.stream import BLOCK_SIZE, open_stream

if TYPE_CHECKING:
    from pylaw.target.remote.cache import RemoteCache
    from pylaw.target.remote.progress import ProgressCallback
    from pylaw.target.remote.transfer import TransferResult

logger = logging.getLogger(__name__)
#: the result of an operation that :meth:`RemoteFileSystem.run` retries
T = TypeVar("T")
#: (algorithm, lower-case hex) of a file's content
Digest = tuple[str, str]


#: the hidden directory, next to uploaded files, that holds their checksum records
RECORD_DIR = ".pylaw-checksums"


def local_url(path: str) -> str:
    """The file:// URL of a local path."""
    return "file://" + os.path.abspath(path)


class RemoteFileSystem:
    """A storage element: base URLs, a file interface, a retry policy, an optional cache.

    ``operation_bases`` maps an operation (``stat``, ``listdir``, ``mkdir``, ``remove``,
    ``rename``, ``get``, ``put``) to its own bases, e.g. to list over root:// but
    transfer over davs://. Build one from config with :meth:`from_config` or
    :func:`pylaw.target.remote.target.get_filesystem`.
    """

    def __init__(self, name: str, bases: Sequence[str], interface: FileInterface,
                 retry: RetryPolicy | None = None, operation_bases: Mapping[str, Sequence[str]] | None = None,
                 cache: RemoteCache | None = None, parallel: int = 8,
                 sleep: Callable[[float], None] = time.sleep, checksum: str | None = "adler32",
                 record_checksums: bool = False) -> None:
        if not bases:
            raise ValueError(f"storage element {name!r} needs at least one base URL")
        self.name = name
        self.bases = tuple(base.rstrip("/") for base in bases)
        self.operation_bases = {op: tuple(b.rstrip("/") for b in urls)
                                for op, urls in (operation_bases or {}).items()}
        self.interface = interface
        self.retry = retry or RetryPolicy()
        self.cache = cache
        self.parallel = parallel
        self._sleep = sleep
        self._rng = random.Random()
        self.checksum_algorithm = check_algorithm(checksum) if checksum else None
        if record_checksums and self.checksum_algorithm is None:
            raise ValueError(f"storage element {name!r}: record_checksums needs a checksum algorithm")
        self.record_checksums = record_checksums
        #: (base, algorithm) pairs whose storage said it cannot report that checksum
        self._no_checksum: set[tuple[str, str]] = set()

    def __repr__(self) -> str:
        return f"RemoteFileSystem({self.name!r}, {[redact(b) for b in self.bases]})"

    @classmethod
    def from_config(cls, config: StorageConfig) -> RemoteFileSystem:
        """Build from a parsed ``[storage:NAME]`` section, with the interface it names (GFAL2 by default)."""
        from pylaw.target.remote.cache import RemoteCache
        from pylaw.target.remote.registry import interface_class

        retry = RetryPolicy(attempts=config.retries + 1, delay=config.retry_delay,
                            max_delay=config.retry_max_delay, jitter=config.retry_jitter,
                            timeout=config.timeout or None)
        cache = RemoteCache(config.cache_root, config.cache_max_size, config.cache_validation) \
            if config.cache_root else None
        interface = interface_class(config.interface, f"[storage:{config.name}]")(**config.interface_options)
        return cls(config.name, config.bases, interface, retry, config.operation_bases, cache,
                   config.parallel, checksum=config.checksum, record_checksums=config.record_checksums)

    def close(self) -> None:
        """Close the interface (its connections); the storage element stays usable and reconnects on use."""
        self.interface.close()

    def __enter__(self) -> RemoteFileSystem:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- paths and the retry loop ---------------------------------------------------------

    @staticmethod
    def normpath(path: str) -> str:
        """``path`` as ``/a/b`` relative to the base; refuses paths that climb above it."""
        parts: list[str] = []
        for part in path.strip().split("/"):
            if part == "..":
                if not parts:
                    raise PathEscapeError(f"remote path {path!r} climbs above the storage element's base")
                parts.pop()
            elif part not in ("", "."):
                parts.append(part)
        return "/" + "/".join(parts)

    def url(self, path: str, operation: str = "stat", base: str | None = None) -> str:
        """The full URL of ``path`` on ``base`` (default: the first base for ``operation``)."""
        base = base if base is not None else self.bases_for(operation)[0]
        norm = self.normpath(path)
        return base if norm == "/" else base + norm

    def bases_for(self, operation: str) -> tuple[str, ...]:
        return self.operation_bases.get(operation, self.bases)

    def run(self, operation: str, path: str, call: Callable[[str], T]) -> T:
        """``call(base)`` with fallback over the bases and retries of transient errors.

        Each round tries every base for ``operation`` once; a transient error moves on to
        the next base, and after a failed round the policy's back-off is slept.
        """
        bases = self.bases_for(operation)
        last: TransientRemoteError | None = None
        for attempt in range(1, self.retry.attempts + 1):
            if attempt > 1:
                self._sleep(self.retry.backoff(attempt, self._rng))
            for base in bases:
                try:
                    return call(base)
                except TransientRemoteError as exc:
                    last = exc
                    logger.info("%s of %s on %s failed (attempt %d/%d): %s", operation, path, redact(base),
                                attempt, self.retry.attempts, exc)
        assert last is not None
        raise type(last)(f"{operation} of {path!r} on storage element {self.name!r} failed "
                         f"{self.retry.attempts} time(s) on {len(bases)} base(s); last error: {last}",
                         operation=operation, url=last.url, code=last.code) from last

    # -- namespace operations -----------------------------------------------------------

    def stat(self, path: str) -> RemoteStat:
        timeout = self.retry.timeout
        return self.run("stat", path, lambda base: self.interface.stat(self.url(path, base=base), timeout))

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except RemoteFileNotFoundError:
            return False
        return True

    def isdir(self, path: str) -> bool:
        try:
            return self.stat(path).is_dir
        except RemoteFileNotFoundError:
            return False

    def listdir(self, path: str) -> list[str]:
        """Sorted names in the directory ``path``."""
        timeout = self.retry.timeout
        return sorted(self.run("listdir", path, lambda base: self.interface.listdir(self.url(path, base=base),
                                                                                     timeout)))

    def listdir_stat(self, path: str) -> dict[str, RemoteStat]:
        """Name -> stat of everything in the directory ``path``, in as few requests as the backend can."""
        timeout = self.retry.timeout
        return self.run("listdir", path,
                        lambda base: self.interface.listdir_stat(self.url(path, base=base), timeout))

    def checksum(self, path: str, algorithm: str | None = None) -> str | None:
        """The checksum the storage reports for the file ``path`` (default: the configured algorithm).

        None when the storage cannot report it (or no algorithm is configured); a storage
        that said so once is not asked again for that algorithm on that base.
        """
        name = check_algorithm(algorithm) if algorithm else self.checksum_algorithm
        if name is None:
            return None
        timeout = self.retry.timeout

        def call(base: str) -> str | None:
            if (base, name) in self._no_checksum:
                return None
            value = self.interface.checksum(self.url(path, base=base), name, timeout)
            if value is None:
                self._no_checksum.add((base, name))
            return value

        return self.run("checksum", path, call)

    def reports_checksums(self, algorithm: str | None = None) -> bool:
        """Whether verifying by ``algorithm`` (default: the configured one) may work: not known to fail."""
        name = algorithm or self.checksum_algorithm
        return name is not None and any((base, name) not in self._no_checksum for base in self.bases_for("checksum"))

    def _check_checksum(self, path: str, expected: Digest, what: str, operation: str) -> None:
        """RemoteChecksumError if the storage reports another checksum for ``path`` than ``expected``."""
        algorithm, value = expected
        reported = self.checksum(path, algorithm)
        if reported is not None and reported != value:
            raise RemoteChecksumError(
                f"{what} on {self.name!r}: the storage reports {algorithm} {reported} for {path!r}, the source "
                f"has {value}; the source changed while it was sent, or the transfer or the storage corrupted "
                "it", operation=operation, url=redact(self.url(path, "checksum")), algorithm=algorithm,
                expected=value, actual=reported)

    def local_digest(self, local_path: str, checksums: Checksummer | None = None, verify: bool = True
                     ) -> Digest | None:
        """The checksum an upload of ``local_path`` needs: for verification, for the record, or None.

        Taken from ``checksums`` (fed while the file was written) when it covers the whole
        file, else computed by one read of the file.
        """
        name = self.checksum_algorithm
        if name is None or not (self.record_checksums or (verify and self.reports_checksums())):
            return None
        if checksums is not None and name in checksums.algorithms and checksums.size == os.stat(local_path).st_size:
            return name, checksums.hexdigest(name)
        return name, file_checksums(local_path, (name,)).hexdigest(name)

    # -- checksum records (for ``pylaw verify``) ------------------------------------------

    @staticmethod
    def record_path(path: str) -> str:
        """Where the checksum record of ``path`` lives: ``<dir>/.pylaw-checksums/<name>.json``."""
        directory, basename = posixpath.split(RemoteFileSystem.normpath(path))
        return posixpath.join(directory, RECORD_DIR, basename + ".json")

    def write_record(self, path: str, size: int, digest: Digest) -> None:
        """Record ``path``'s size and checksum, atomically (an upload of its own)."""
        with tempfile.TemporaryDirectory(prefix="pylaw-record-") as workdir:
            local = os.path.join(workdir, "record.json")
            with open(local, "w") as f:
                json.dump({"size": size, digest[0]: digest[1]}, f)
            self._put(local, self.record_path(path), True, True, None, record=False)

    def read_record(self, path: str) -> dict[str, Any] | None:
        """The checksum record of ``path`` (``{"size": ..., "adler32": ...}``), or None if there is none."""
        with tempfile.TemporaryDirectory(prefix="pylaw-record-") as workdir:
            local = os.path.join(workdir, "record.json")
            try:
                self.get(self.record_path(path), local)
            except RemoteFileNotFoundError:
                return None
            with open(local) as f:
                try:
                    return dict(json.load(f))
                except ValueError:
                    return None

    def mkdir(self, path: str, parents: bool = True) -> None:
        """Create a directory; with ``parents`` (the default) like ``mkdir -p``."""
        timeout = self.retry.timeout
        self.run("mkdir", path,
                 lambda base: self.interface.mkdir(self.url(path, base=base), parents, timeout))

    def unlink(self, path: str) -> None:
        timeout = self.retry.timeout
        self.run("remove", path, lambda base: self.interface.unlink(self.url(path, base=base), timeout))

    def remove(self, path: str, recursive: bool = True, silent: bool = True) -> bool:
        """Remove a file, or a directory (with its content when ``recursive``).

        Returns whether something was removed; a missing path raises
        RemoteFileNotFoundError unless ``silent``.
        """
        try:
            info = self.stat(path)
            if not info.is_dir:
                self.unlink(path)
                if self.record_checksums and RECORD_DIR not in self.normpath(path).split("/"):
                    self.remove(self.record_path(path), recursive=False)
            else:
                self._remove_dir(path, recursive)
        except RemoteFileNotFoundError:
            if not silent:
                raise
            return False
        if self.cache is not None:
            self.cache.invalidate(self, path)
        return True

    def _remove_dir(self, path: str, recursive: bool) -> None:
        timeout = self.retry.timeout
        url = self.url(path, "remove")
        if recursive and not self.interface.rmdir_is_recursive(url):
            for name in self.listdir(path):
                child = posixpath.join(self.normpath(path), name)
                try:
                    if self.stat(child).is_dir:
                        self._remove_dir(child, True)
                    else:
                        self.unlink(child)
                except RemoteFileNotFoundError:
                    pass  # removed concurrently: the goal is reached
        self.run("remove", path, lambda base: self.interface.rmdir(self.url(path, base=base), timeout))

    def rename(self, source: str, destination: str) -> None:
        """Move ``source`` to ``destination`` on this storage element, replacing a file there."""
        timeout = self.retry.timeout
        self.run("rename", source, lambda base: self.interface.rename(
            self.url(source, base=base), self.url(destination, base=base), timeout))
        if self.cache is not None:
            self.cache.invalidate(self, source)
            self.cache.invalidate(self, destination)

    # -- transfers ----------------------------------------------------------------------

    def _copy(self, operation: str, path: str, source: Callable[[str], str], destination: Callable[[str], str]
              ) -> None:
        timeout = self.retry.timeout
        self.run(operation, path,
                 lambda base: self.interface.copy(source(base), destination(base), True, timeout))

    def put(self, local_path: str, path: str, make_parents: bool = True, verify: bool = True,
            checksums: Checksummer | None = None) -> None:
        """Upload a local file to ``path`` atomically (temporary name, size and checksum check, rename).

        On any failure the temporary file is removed (best effort) and the error raised;
        the final name never shows partial data. With ``verify``, the size of the
        temporary file (and its checksum, where the storage reports one) and the size of
        the published file are checked; a published file that vanished right away (a
        MOVE duplicated by the HTTP client's own retry can delete it on some servers)
        makes the whole upload start again, up to ``retry.attempts`` times.
        ``checksums`` were computed while the file was written (saves reading it again).
        """
        self._put(local_path, path, make_parents, verify, checksums, self.record_checksums)

    def _put(self, local_path: str, path: str, make_parents: bool, verify: bool, checksums: Checksummer | None,
             record: bool) -> None:
        size = os.stat(local_path).st_size
        norm = self.normpath(path)
        digest = self.local_digest(local_path, checksums, verify)
        if make_parents:
            self.mkdir(posixpath.dirname(norm))
        for attempt in range(1, self.retry.attempts + 1):
            self._put_once(local_path, norm, size, verify, digest if verify else None)
            if not verify or self._published(norm, size):
                break
            logger.warning("%s on %s vanished or changed right after its upload (attempt %d/%d); uploading "
                           "again", norm, self.name, attempt, self.retry.attempts)
        else:
            raise TransientRemoteError(f"upload of {local_path} to {norm!r} on {self.name!r} was not visible "
                                       f"after {self.retry.attempts} attempts", operation="put",
                                       url=self.url(norm, "put"))
        if self.cache is not None:
            self.cache.invalidate(self, norm)
        if record and digest is not None:
            self.write_record(norm, size, digest)

    def _published(self, path: str, size: int) -> bool:
        try:
            return self.stat(path).size == size
        except RemoteFileNotFoundError:
            return False

    def _put_once(self, local_path: str, norm: str, size: int, verify: bool, digest: Digest | None) -> None:
        """Upload to a temporary name, check its size and checksum, rename it into place."""
        upload = StagedUpload(self, norm, size, digest, f"upload of {local_path} to {norm!r}")
        source = local_url(local_path)
        try:
            upload.send(lambda base: source)
            if verify:
                upload.check_size()
            upload.check_checksum()
            upload.publish()
        except BaseException:
            upload.discard()
            raise
        upload.discard(keep_last=True)  # leftovers of failed attempts, if the server kept them

    def get(self, path: str, local_path: str, verify: bool = True, expected: RemoteStat | None = None
            ) -> RemoteStat:
        """Download ``path`` to ``local_path`` atomically; returns the remote stat it matched.

        The data lands in a temporary sibling of ``local_path`` and is renamed only when
        its size equals the remote size (``expected``, if the caller has stat-ed already)
        and, where the storage reports one, its checksum the remote checksum.
        """
        return self.get_checked(path, local_path, verify, expected)[0]

    def get_checked(self, path: str, local_path: str, verify: bool = True, expected: RemoteStat | None = None,
                    remote_checksum: str | None = None) -> tuple[RemoteStat, str | None]:
        """:meth:`get`, also returning the verified checksum (None where none was checked).

        ``remote_checksum``: the storage's checksum if the caller asked for it already.
        A mismatch raises RemoteChecksumError, or TransientRemoteError if the remote file
        changed (its stat) during the download.
        """
        norm = self.normpath(path)
        info = expected or self.stat(norm)
        with staged(os.path.abspath(local_path)) as tmp:
            self._copy("get", norm, lambda base: self.url(norm, base=base), lambda base: local_url(tmp))
            if verify and os.stat(tmp).st_size != info.size:
                raise TransientRemoteError(
                    f"download of {norm!r} from {self.name!r} gave {os.stat(tmp).st_size} of {info.size} "
                    "bytes",
                    operation="get", url=self.url(norm, "get"))
            checksum = self._check_download(norm, tmp, info, remote_checksum) if verify else None
        return info, checksum

    def _check_download(self, norm: str, local: str, info: RemoteStat, reported: str | None) -> str | None:
        """The remote checksum, compared with one read of the downloaded file; None if there is none."""
        name = self.checksum_algorithm
        if name is None or not self.reports_checksums():
            return None
        reported = reported or self.checksum(norm)
        if reported is None:
            return None
        actual = file_checksums(local, (name,)).hexdigest(name)
        if actual != reported:
            if self.stat(norm) != info:
                raise TransientRemoteError(f"{norm!r} on {self.name!r} changed during its download",
                                           operation="get", url=self.url(norm, "get"))
            raise RemoteChecksumError(
                f"download of {norm!r} from {self.name!r}: the data has {name} {actual}, the storage reports "
                f"{reported}; the transfer or the storage corrupted it", operation="get",
                url=redact(self.url(norm, "get")), algorithm=name, expected=reported, actual=actual)
        return reported

    def open(self, path: str, mode: str = "r", block_size: int = BLOCK_SIZE, **kwargs: Any) -> IO:
        """``path`` open for reading in blocks (see :mod:`pylaw.target.remote.stream`), seekable.

        An interface that cannot read at offsets (``open_read`` not implemented) gets the
        file downloaded to a temporary local file first, which the returned handle reads.
        Where calls run in a storage agent (:mod:`pylaw.target.remote.agent`: XrdCl after a
        fork, davs:// with lean TLS) each block is one call there.
        """
        try:
            return open_stream(self, path, mode, block_size, **kwargs)
        except RemoteNotSupportedError as exc:
            if exc.operation != "open":
                raise
        workdir = tempfile.mkdtemp(prefix="pylaw-download-")
        try:
            local = os.path.join(workdir, posixpath.basename(self.normpath(path)))
            self.get(path, local)
            return open(local, mode, **kwargs)  # the open handle keeps the data readable after the rmtree
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def copy(self, source: str, destination: str) -> None:
        """Copy between two paths of this storage element, atomically.

        The server copies itself (third-party copy) where it can; where it cannot (xrootd
        without ``ofs.tpc`` answers "tpc not supported") the data is streamed through a
        local temporary file.
        """
        src, dst = self.normpath(source), self.normpath(destination)
        self.mkdir(posixpath.dirname(dst))
        source_sum = self.checksum(src) if self.reports_checksums() else None
        digest = (self.checksum_algorithm, source_sum) if source_sum and self.checksum_algorithm else None
        upload = StagedUpload(self, dst, None, digest, f"copy of {src!r} to {dst!r}")
        try:
            upload.send(lambda base: self.url(src, base=base))
        except RemoteNotSupportedError:
            upload.discard()
            self._copy_through_local(src, dst)
            return
        except BaseException:
            upload.discard()
            raise
        try:
            upload.size = self.stat(upload.tmp).size
            upload.check_checksum()
            upload.publish()
        except BaseException:
            upload.discard()
            raise

    def _copy_through_local(self, source: str, destination: str) -> None:
        with tempfile.TemporaryDirectory(prefix="pylaw-copy-") as workdir:
            local = os.path.join(workdir, posixpath.basename(source))
            self.get(source, local)
            self.put(local, destination, make_parents=False)

    def copy_many(self, pairs: Iterable[tuple[str, str]], direction: str = "put", parallel: int | None = None,
                  progress: bool | ProgressCallback | None = None, on_error: str = "raise"
                  ) -> list[TransferResult]:
        """Run many transfers in parallel; see :func:`pylaw.target.remote.transfer.copy_many`."""
        from pylaw.target.remote.transfer import copy_many

        return copy_many(self, pairs, direction, parallel=parallel or self.parallel, progress=progress,
                         on_error=on_error)
