"""An opt-in local cache of remote files, shared safely by several processes.

Layout: ``<root>/<key[:2]>/<key>/`` per cached file, where ``key`` hashes the storage
element's name and the path, holding ``data`` (the content), ``meta.json`` (storage, path,
remote size and mtime) and ``lock`` (a ``flock`` lock file whose mtime records the last
access, for LRU eviction).

Contract:

- a read costs exactly one remote ``stat`` when the entry is valid: the entry is used
  only if the remote size AND mtime equal the recorded ones, and the local data has
  that size;
- a miss downloads into the entry under its lock (other processes wanting the same
  file wait instead of downloading it twice), then stats the remote again: if the file
  changed during the download, nothing is recorded and the download is repeated;
- ``meta.json`` is written last and removed first, so a crash leaves no entry that
  looks valid with partial data;
- when the cache grows beyond ``max_size`` the least recently used entries are removed;
  entries locked by another process are skipped.
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
from pylaw.target.base import temporary_name
from pylaw.target.remote.interface import RemoteStat

if TYPE_CHECKING:
    from pylaw.target.remote.filesystem import RemoteFileSystem

DOWNLOAD_TRIES = 3


@contextlib.contextmanager
def file_lock(path: str, blocking: bool = True) -> Iterator[IO | None]:
    """An exclusive ``flock`` on ``path``; yields the locked handle, or None if not blocking and held.

    The lock file may be deleted by an evicting process while we wait for it; a lock on
    the deleted inode would protect nothing, so we check the inode and lock again.
    """
    while True:
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
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
        os.makedirs(os.path.dirname(path), exist_ok=True)


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

    def matches(self, info: RemoteStat) -> bool:
        """Valid for ``info``: recorded size and mtime equal the remote ones, data complete."""
        meta = self.recorded()
        if meta is None or meta.get("size") != info.size or meta.get("mtime") != info.mtime:
            return False
        try:
            return os.stat(self.data).st_size == info.size
        except FileNotFoundError:
            return False

    def record(self, fs_name: str, path: str, info: RemoteStat) -> None:
        tmp = os.path.join(self.directory, temporary_name("meta.json"))
        with open(tmp, "w") as f:
            json.dump({"fs": fs_name, "path": path, "size": info.size, "mtime": info.mtime}, f)
        os.replace(tmp, self.meta)

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

    def __init__(self, root: str, max_size: int) -> None:
        self.root = os.path.abspath(os.path.expanduser(os.path.expandvars(root)))
        self.max_size = max_size

    def __repr__(self) -> str:
        return f"RemoteCache({self.root!r}, max_size={self.max_size})"

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
        with file_lock(entry.lock) as handle:
            if not entry.matches(info):
                self._download(fs, path, entry, info)
            entry.touch()
            assert handle is not None  # a blocking lock always yields its handle
            fcntl.flock(handle, fcntl.LOCK_SH)  # readers may share; eviction needs it exclusive
            yield entry.data
        self.evict(keep=entry.directory)

    def _stat_cacheable(self, fs: RemoteFileSystem, path: str) -> RemoteStat | None:
        info = fs.stat(path)
        if info.is_dir:
            raise IsADirectoryError(f"cannot cache {path!r} of {fs.name!r}: it is a directory")
        if info.size > self.max_size:
            return None
        os.makedirs(self.entry(fs, path).directory, exist_ok=True)
        return info

    def open(self, fs: RemoteFileSystem, path: str, mode: str = "rb", **kwargs: Any) -> IO | None:
        """An open file of an up-to-date copy (None if too large for the cache).

        Opened while the entry is locked, so an eviction right after cannot take the data
        away: the open handle keeps reading the same inode.
        """
        info = self._stat_cacheable(fs, path)
        if info is None:
            return None
        entry = self.entry(fs, path)
        with file_lock(entry.lock):
            if not entry.matches(info):
                self._download(fs, path, entry, info)
            entry.touch()
            handle = open(entry.data, mode, **kwargs)  # noqa: SIM115 - handed to the caller
        self.evict(keep=entry.directory)
        return handle

    def _download(self, fs: RemoteFileSystem, path: str, entry: CacheEntry, info: RemoteStat) -> None:
        entry.drop()
        for _ in range(DOWNLOAD_TRIES):
            try:
                fs.get(path, entry.data, expected=info)
            except TransientRemoteError:
                # a short download after retries: a writer may be replacing the file
                entry.drop()
            after = fs.stat(path)
            if after == info and os.path.exists(entry.data):
                entry.record(fs.name, fs.normpath(path), info)
                return
            info = after  # changed while we downloaded: fetch the new version
        entry.drop()
        raise TransientRemoteError(f"{path!r} on {fs.name!r} changed during {DOWNLOAD_TRIES} downloads into "
                                   "the cache; retry when it is no longer being written", operation="get",
                                   url=path)

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
        """Bytes of cached data."""
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
        """Remove least recently used entries until the cache fits ``max_size``; returns bytes freed."""
        os.makedirs(self.root, exist_ok=True)
        freed = 0
        with file_lock(os.path.join(self.root, ".evict.lock")):
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
        return freed


def _scandir(path: str) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as entries:
            return [entry for entry in entries if entry.is_dir() and not entry.name.startswith(".")]
    except FileNotFoundError:
        return []


