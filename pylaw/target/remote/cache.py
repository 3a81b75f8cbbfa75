"""An opt-in local cache of remote files, shared safely by several processes.

Layout: ``<root>/<key[:2]>/<key>/`` per cached file, where ``key`` hashes the storage
element's name and the path, holding ``data`` (the content), ``meta.json`` (storage, path,
remote size and mtime, and the remote checksum verified at download where the storage
reports one) and ``lock`` (a ``flock`` lock file whose mtime records the last
access, for LRU eviction); ``<root>/.size`` keeps a running total of the cached bytes.

Contract:

- a read costs exactly one remote ``stat`` when the entry is valid, and O(1) local work:
  a hit neither scans nor evicts. The entry is used only if the remote size AND mtime
  equal the recorded ones, and the local data has that size;
- with ``validation = "checksum"`` (the default) and a storage element that reports
  checksums, a read also asks for the remote checksum (a second server call per hit) and
  uses the entry only if it equals the recorded one: size and mtime alone miss a
  same-size rewrite within the same second (mtimes have whole seconds on most storage).
  Where the storage reports none, or with ``validation = "stat"``, size and mtime decide;
- readers hold a SHARED lock on the entry while they use it; downloads and eviction need
  it EXCLUSIVE. ``flock`` cannot convert a lock atomically (it drops it first), so a
  reader never converts: after downloading under the exclusive lock it releases it,
  takes the shared lock anew and checks the entry again (an evictor may have won the
  gap: then it downloads again);
- a miss downloads into the entry under its exclusive lock (other processes wanting the
  same file wait instead of downloading it twice), then stats the remote again: if the
  file changed during the download, nothing is recorded and the download is repeated;
- ``meta.json`` is written last and removed first, so a crash leaves no entry that
  looks valid with partial data;
- after a miss, when the running total exceeds ``max_size``, the cache is scanned and the
  least recently used entries are removed (the total is then recounted exactly); entries
  locked by another process are skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from pylaw.errors import TransientRemoteError
from pylaw.target.publish import atomic_open
from pylaw.target.remote.interface import RemoteStat

if TYPE_CHECKING:
    from pylaw.target.remote.filesystem import RemoteFileSystem

DOWNLOAD_TRIES = 3
VALIDATIONS = ("checksum", "stat")
EVICTED_TRIES = 5  # evictions between a download and its use before giving up


@contextlib.contextmanager
def file_lock(path: str, blocking: bool = True, shared: bool = False) -> Iterator[IO | None]:
    """A ``flock`` on ``path`` (exclusive, or ``shared``); yields the locked handle, or None if not
    blocking and held.

    The lock file (or its directory) may be deleted by an evicting process while we wait
    for it; a lock on the deleted inode would protect nothing, so we check the inode and
    lock again.
    """
    mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
    while True:
        try:
            handle = open(path, "a+")  # noqa: SIM115 - closed below, on every path
        except FileNotFoundError:  # no entry directory yet, or just evicted: (re)create it
            with contextlib.suppress(FileExistsError):  # an evictor may remove it while makedirs checks it
                os.makedirs(os.path.dirname(path), exist_ok=True)
            continue
        with handle:
            try:
                fcntl.flock(handle, mode)
            except BlockingIOError:
                yield None
                return
            try:
                same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                try:
                    yield handle
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
                return


class CacheEntry:
    """The files of one cached remote file."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.data = os.path.join(directory, "data")
        self.meta = os.path.join(directory, "meta.json")
        self.lock = os.path.join(directory, "lock")

    def recorded(self) -> dict | None:
        try:
            with open(self.meta) as f:
                return dict(json.load(f))
        except (FileNotFoundError, ValueError):
            return None

    def matches(self, info: RemoteStat, checksum: str | None = None) -> bool:
        """Valid for ``info``: recorded size and mtime (and ``checksum``, if given) equal the remote ones,
        data complete."""
        meta = self.recorded()
        if meta is None or meta.get("size") != info.size or meta.get("mtime") != info.mtime:
            return False
        if checksum is not None and meta.get("checksum") != checksum:
            return False
        try:
            return os.stat(self.data).st_size == info.size
        except FileNotFoundError:
            return False

    def record(self, fs_name: str, path: str, info: RemoteStat, checksum: str | None) -> None:
        with atomic_open(self.meta) as f:
            json.dump({"fs": fs_name, "path": path, "size": info.size, "mtime": info.mtime, "checksum": checksum},
                      f)

    def drop(self) -> None:
        """Forget the entry's content (meta first, so it never looks valid half-removed)."""
        for name in (self.meta, self.data):
            with contextlib.suppress(FileNotFoundError):
                os.remove(name)

    def touch(self) -> None:
        """Record an access; an explicit time, as file-system clocks tick only every few ms."""
        now = time.time_ns()
        os.utime(self.lock, ns=(now, now))


class RemoteCache:
    """A size-bounded LRU cache of remote files in the local directory ``root``."""

    def __init__(self, root: str, max_size: int, validation: str = "checksum") -> None:
        if validation not in VALIDATIONS:
            raise ValueError(f"cache validation must be one of {VALIDATIONS}, not {validation!r}")
        self.root = os.path.abspath(os.path.expanduser(os.path.expandvars(root)))
        self.max_size = max_size
        self.validation = validation
        self.total = os.path.join(self.root, ".size")

    def __repr__(self) -> str:
        return f"RemoteCache({self.root!r}, max_size={self.max_size}, validation={self.validation!r})"

    def entry(self, fs: RemoteFileSystem, path: str) -> CacheEntry:
        key = hashlib.sha256(f"{fs.name}\0{fs.normpath(path)}".encode()).hexdigest()[:40]
        return CacheEntry(os.path.join(self.root, key[:2], key))

    @contextlib.contextmanager
    def fetch(self, fs: RemoteFileSystem, path: str) -> Iterator[str | None]:
        """Local path of an up-to-date copy of ``path``, valid inside the ``with`` block.

        None if the file exceeds ``max_size``. Costs one remote stat when the entry is
        valid. The entry stays share-locked during the block, so no process evicts it
        under the reader.
        """
        info = self._stat_cacheable(fs, path)
        if info is None:
            yield None
            return
        entry = self.entry(fs, path)
        with self._valid(fs, path, entry, info, self._remote_checksum(fs, path)) as downloaded:
            yield entry.data
        if downloaded:
            self.evict(keep=entry.directory)

    def open(self, fs: RemoteFileSystem, path: str, mode: str = "rb", **kwargs: Any) -> IO | None:
        """An open file of an up-to-date copy (None if too large for the cache).

        Opened while the entry is share-locked, so an eviction right after cannot take the
        data away: the open handle keeps reading the same inode.
        """
        info = self._stat_cacheable(fs, path)
        if info is None:
            return None
        entry = self.entry(fs, path)
        with self._valid(fs, path, entry, info, self._remote_checksum(fs, path)) as downloaded:
            handle = open(entry.data, mode, **kwargs)  # noqa: SIM115 - handed to the caller
        if downloaded:
            self.evict(keep=entry.directory)
        return handle

    def _remote_checksum(self, fs: RemoteFileSystem, path: str) -> str | None:
        """``algorithm:hex`` of the remote file when entries are checked by checksum and the storage has one."""
        if self.validation != "checksum" or not fs.reports_checksums():
            return None
        value = fs.checksum(path)
        return None if value is None else f"{fs.checksum_algorithm}:{value}"

    @contextlib.contextmanager
    def _valid(self, fs: RemoteFileSystem, path: str, entry: CacheEntry, info: RemoteStat,
               checksum: str | None) -> Iterator[bool]:
        """Hold a shared lock on ``entry`` while it is valid for ``info`` (and ``checksum``), downloading it
        if needed.

        Yields whether this call downloaded (the cache grew: time to evict).
        """
        downloaded = False
        for _ in range(EVICTED_TRIES):
            with file_lock(entry.lock, shared=True) as handle:
                if handle is not None and entry.matches(info, checksum):
                    entry.touch()
                    yield downloaded
                    return
            with file_lock(entry.lock):
                if not entry.matches(info, checksum):
                    info, checksum = self._download(fs, path, entry, info, checksum)
                    downloaded = True
            # the exclusive lock is released before the shared one is taken (flock cannot
            # convert atomically); an evictor may win the gap: check again
        raise TransientRemoteError(
            f"{path!r} of {fs.name!r} was evicted from the cache {self.root} {EVICTED_TRIES} times between its "
            f"download and its use; the cache ({self.max_size} bytes) is too small for the files read at once",
            operation="get", url=path)

    def _stat_cacheable(self, fs: RemoteFileSystem, path: str) -> RemoteStat | None:
        info = fs.stat(path)
        if info.is_dir:
            raise IsADirectoryError(f"cannot cache {path!r} of {fs.name!r}: it is a directory")
        if info.size > self.max_size:
            return None
        return info  # the entry's directory is made when its lock is taken

    def _download(self, fs: RemoteFileSystem, path: str, entry: CacheEntry, info: RemoteStat,
                  checksum: str | None) -> tuple[RemoteStat, str | None]:
        """Download into ``entry`` (held exclusively); returns the remote stat and checksum recorded.

        The download verifies the data against the remote checksum (``checksum``, asked for
        already by the reader, or asked now): the recorded checksum describes the data.
        """
        entry.drop()
        known = checksum.partition(":")[2] if checksum else None
        for _ in range(DOWNLOAD_TRIES):
            verified = None
            try:
                verified = fs.get_checked(path, entry.data, expected=info, remote_checksum=known)[1]
            except TransientRemoteError:
                # a short download after retries: a writer may be replacing the file
                entry.drop()
            after = fs.stat(path)
            if after == info and os.path.exists(entry.data):
                recorded = f"{fs.checksum_algorithm}:{verified}" if verified else None
                entry.record(fs.name, fs.normpath(path), info, recorded)
                self._count(info.size)
                return info, recorded if checksum else None
            info, known = after, None  # changed while we downloaded: fetch the new version
        entry.drop()
        raise TransientRemoteError(f"{path!r} on {fs.name!r} changed during {DOWNLOAD_TRIES} downloads into "
                                   "the cache; retry when it is no longer being written", operation="get",
                                   url=path)

    def _count(self, added: int) -> None:
        """Add to the running total (an upper bound: removals by invalidation are not subtracted)."""
        with file_lock(os.path.join(self.root, ".evict.lock")):
            self._write_total(self._read_total() + added)

    def _read_total(self) -> int:
        try:
            with open(self.total) as f:
                return int(f.read() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _write_total(self, total: int) -> None:
        with atomic_open(self.total) as f:
            f.write(str(total))

    def invalidate(self, fs: RemoteFileSystem, path: str) -> None:
        """Forget ``path`` (after this process wrote or removed it)."""
        entry = self.entry(fs, path)
        if os.path.isdir(entry.directory):
            with file_lock(entry.lock):
                entry.drop()

    def contains(self, fs: RemoteFileSystem, path: str) -> bool:
        """Whether a (possibly stale) entry is recorded for ``path``; no remote access."""
        return self.entry(fs, path).recorded() is not None

    def size(self) -> int:
        """Bytes of cached data (counted: scans the cache)."""
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> list[tuple[float, int, str]]:
        """(last access, data size, directory) of every entry."""
        result = []
        for shard in _scandir(self.root):
            for entry in _scandir(shard.path):
                try:
                    access = os.stat(os.path.join(entry.path, "lock")).st_mtime
                    size = os.stat(os.path.join(entry.path, "data")).st_size
                except FileNotFoundError:
                    continue
                result.append((access, size, entry.path))
        return result

    def evict(self, keep: str | None = None) -> int:
        """Remove least recently used entries until the cache fits ``max_size``; returns bytes freed.

        Scans only when the running total says the cache may be too large.
        """
        os.makedirs(self.root, exist_ok=True)
        freed = 0
        with file_lock(os.path.join(self.root, ".evict.lock")):
            if os.path.exists(self.total) and self._read_total() <= self.max_size:
                return 0
            entries = sorted(self._entries())
            total = sum(size for _, size, _ in entries)
            for _, size, directory in entries:
                if total - freed <= self.max_size:
                    break
                if directory == keep:
                    continue
                with file_lock(os.path.join(directory, "lock"), blocking=False) as locked:
                    if not locked:
                        continue  # in use by another process: evict something else
                    shutil.rmtree(directory, ignore_errors=True)
                freed += size
            self._write_total(total - freed)
        return freed


def _scandir(path: str) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as entries:
            return [entry for entry in entries if entry.is_dir() and not entry.name.startswith(".")]
    except FileNotFoundError:
        return []


