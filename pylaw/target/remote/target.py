"""Remote file and directory targets: the local-target API on a storage element.

A task's code does not change when its output moves to grid storage::

    def output(self):
        return pylaw.RemoteFileTarget(f"reco/{self.dataset}/reco.root", fs="dcache")

    def run(self):
        self.output().parent.touch()
        with self.output().open("w") as f:
            f.write(...)

``fs`` names a ``[storage:NAME]`` section of Luigi's config (or is a
:class:`RemoteFileSystem`). Writes are atomic: ``open("w")`` and ``localize("w")``
write a local temporary file and upload it on success to a temporary remote name,
renamed into place afterwards. Reads use the storage element's cache when one is
configured (one remote stat per cache hit), a temporary download otherwise.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import shutil
import tempfile
import threading
from collections.abc import Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from pylaw.errors import RemoteFileNotFoundError, RemoteNotADirectoryError
from pylaw.target.base import DirectoryTarget, FileSystemTarget, FileTarget
from pylaw.target.local import AtomicFile, LocalFileTarget
from pylaw.target.remote.checksum import Checksummer
from pylaw.target.remote.config import read_storage_config
from pylaw.target.remote.filesystem import RECORD_DIR, RemoteFileSystem
from pylaw.target.remote.interface import RemoteStat

_FILESYSTEMS: dict[str, RemoteFileSystem] = {}
_FILESYSTEMS_LOCK = threading.Lock()


def get_filesystem(name: str) -> RemoteFileSystem:
    """The storage element ``name``: registered, or built once from ``[storage:NAME]``."""
    with _FILESYSTEMS_LOCK:
        fs = _FILESYSTEMS.get(name)
        if fs is None:
            fs = _FILESYSTEMS[name] = RemoteFileSystem.from_config(read_storage_config(name))
        return fs


def register_filesystem(fs: RemoteFileSystem) -> None:
    """Make ``fs`` the storage element targets get for ``fs.name`` (e.g. built in code or tests)."""
    with _FILESYSTEMS_LOCK:
        _FILESYSTEMS[fs.name] = fs


def forget_filesystems() -> None:
    """Drop every storage element built so far, so the next use re-reads the config."""
    with _FILESYSTEMS_LOCK:
        _FILESYSTEMS.clear()


class RemoteTargetMixin:
    """Path and storage-element handling shared by remote files and directories."""

    path: str

    def __init__(self, path: str, fs: str | RemoteFileSystem) -> None:
        self.path = RemoteFileSystem.normpath(os.fspath(path))
        self._fs = fs if isinstance(fs, RemoteFileSystem) else None
        self.fs_name = fs.name if isinstance(fs, RemoteFileSystem) else fs
        # computed once: collections ask every target for them (10k targets, 10k calls)
        self._dirname, self._basename = posixpath.split(self.path)
        self._listing_key = ("remote", self.fs_name, self._dirname)

    @property
    def basename(self) -> str:
        return self._basename

    @property
    def fs(self) -> RemoteFileSystem:
        if self._fs is None:
            self._fs = get_filesystem(self.fs_name)
        return self._fs

    @property
    def url(self) -> str:
        """The full URL on the storage element's first base."""
        return self.fs.url(self.path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, fs={self.fs_name!r})"

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and other.path == self.path  # type: ignore[attr-defined]
                and other.fs_name == self.fs_name)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.fs_name, self.path))

    @property
    def parent(self) -> RemoteDirectoryTarget:
        return RemoteDirectoryTarget(self._dirname, fs=self._fs or self.fs_name)

    def stat(self) -> RemoteStat:
        return self.fs.stat(self.path)

    def sibling_listing_key(self) -> Hashable:
        return self._listing_key

    def list_parent_names(self) -> set[str]:
        try:
            return set(self.fs.listdir(self._dirname))
        except (RemoteFileNotFoundError, RemoteNotADirectoryError):
            return set()

    @classmethod
    def list_parents_of(cls, targets: list[RemoteTargetMixin]) -> list[set[str]]:
        """``list_parent_names()`` of many targets, ``fs.parallel`` listings at a time.

        Collections call this once with one target per directory: each listing is a
        network round trip, and running them concurrently hides the latency.
        """
        if len(targets) < 2:
            return [target.list_parent_names() for target in targets]
        workers = max(target.fs.parallel for target in targets)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pylaw-listdir") as pool:
            return list(pool.map(lambda target: target.list_parent_names(), targets))


class _ChecksummingRaw(io.RawIOBase):
    """A raw local file that feeds every byte written to a :class:`Checksummer` on its way to disk."""

    def __init__(self, path: str, summer: Checksummer) -> None:
        self._raw = io.FileIO(path, "x")
        self._summer = summer

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        written = self._raw.write(data)
        self._summer.update(memoryview(data).cast("B")[:written])
        return written

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()
        super().close()


class RemoteWriteFile(AtomicFile):
    """A local temporary file that is uploaded atomically when closed without error.

    When the upload needs a checksum (verification or a record), the bytes are checksummed
    as they are written, so the upload does not read the file again for it.
    """

    def __init__(self, target: RemoteFileTarget, mode: str, **kwargs: Any) -> None:
        self.remote = target
        fs = target.fs
        name = fs.checksum_algorithm
        wanted = name is not None and (fs.record_checksums or fs.reports_checksums())
        self.summer = Checksummer((name,)) if wanted and name and mode in ("w", "wb", "wt") else None
        self.workdir = tempfile.mkdtemp(prefix="pylaw-upload-")
        super().__init__(os.path.join(self.workdir, target.basename), mode, **kwargs)

    def _open(self, path: str, mode: str, **kwargs: Any) -> IO:
        if self.summer is None:
            return super()._open(path, mode, **kwargs)
        buffering = kwargs.pop("buffering", -1)
        size = buffering if buffering > 1 else io.DEFAULT_BUFFER_SIZE
        binary = io.BufferedWriter(_ChecksummingRaw(path, self.summer), buffer_size=size)
        if "b" in mode:
            if kwargs:
                raise ValueError(f"binary mode takes no {sorted(kwargs)} ({self.remote!r})")
            return binary
        return io.TextIOWrapper(binary, line_buffering=buffering == 1, **kwargs)

    def close(self) -> None:
        if self.closed:
            return
        try:
            super().close()
            self.remote.fs.put(self.target_path, self.remote.path, checksums=self.summer)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def discard(self) -> None:
        try:
            super().discard()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


class RemoteFileTarget(RemoteTargetMixin, FileTarget):
    """A file on a storage element: ``RemoteFileTarget("a/b.json", fs="dcache")``."""

    def exists(self) -> bool:
        """Whether the remote file is there (a ``stat`` on the storage element, with retries)."""
        return self.fs.exists(self.path)

    def remove(self, silent: bool = True) -> bool:
        return self.fs.remove(self.path, recursive=False, silent=silent)

    def open(self, mode: str = "r", **kwargs: Any) -> IO:
        """Write atomically (``w``/``wb``), or read: from the cache if one is configured, else streamed.

        A streamed read fetches blocks on demand and is seekable (``block_size=`` sets the
        block, see :mod:`pylaw.target.remote.stream`); a storage element with a cache serves
        the whole file from the cache instead (files larger than the cache are streamed).
        """
        if "w" in mode:
            return RemoteWriteFile(self, mode, **kwargs)  # type: ignore[return-value]
        if mode not in ("r", "rb", "rt"):
            raise ValueError(f"remote files open with r, rb, w or wb, not {mode!r} ({self!r})")
        block_size = kwargs.pop("block_size", None)
        if self.fs.cache is not None:
            handle = self.fs.cache.open(self.fs, self.path, mode, **kwargs)
            if handle is not None:
                return handle
        if block_size is not None:
            kwargs["block_size"] = block_size
        return self.fs.open(self.path, mode, **kwargs)

    @contextlib.contextmanager
    def _local_copy(self) -> Iterator[str]:
        """A local path holding the current content (from the cache, or a temporary download)."""
        cache = self.fs.cache
        if cache is not None:
            with cache.fetch(self.fs, self.path) as cached:
                if cached is not None:
                    yield cached
                    return
        workdir = tempfile.mkdtemp(prefix="pylaw-download-")
        try:
            local = os.path.join(workdir, self.basename)
            self.fs.get(self.path, local)
            yield local
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    @contextlib.contextmanager
    def localize(self, mode: str = "r") -> Iterator[LocalFileTarget]:
        """``r``: a local copy to read; ``w``: a local file to write, uploaded atomically on success."""
        if mode == "r":
            with self._local_copy() as local:
                yield LocalFileTarget(local)
            return
        if mode != "w":
            raise ValueError(f"localize() mode must be 'r' or 'w', not {mode!r}")
        workdir = tempfile.mkdtemp(prefix="pylaw-localize-")
        try:
            tmp = LocalFileTarget(os.path.join(workdir, self.basename))
            yield tmp
            if not tmp.exists():
                raise FileNotFoundError(f"the localized file {tmp.path} for {self!r} was never written")
            self.fs.put(tmp.path, self.path)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def touch(self) -> None:
        """Create an empty file (parents included) if missing.

        An existing file is left as it is: storage elements do not let clients set
        modification times.
        """
        if self.exists():
            return
        with self.open("w"):
            pass

    def copy_to(self, destination: str) -> LocalFileTarget:
        """Download to a local path (a directory keeps the basename), atomically."""
        if os.path.isdir(destination):
            destination = os.path.join(destination, self.basename)
        self.fs.get(self.path, destination)
        return LocalFileTarget(destination)

    def copy_from_local(self, source: str) -> None:
        """Upload a local file to this target, atomically."""
        self.fs.put(source, self.path)


class RemoteDirectoryTarget(RemoteTargetMixin, DirectoryTarget):
    """A directory on a storage element."""

    def exists(self) -> bool:
        """Whether the remote directory is there."""
        return self.fs.isdir(self.path)

    def child(self, name: str, type: str = "f") -> FileSystemTarget:
        if type not in ("f", "d"):
            raise ValueError(f"child type must be 'f' or 'd', not {type!r}")
        cls = RemoteFileTarget if type == "f" else RemoteDirectoryTarget
        return cls(posixpath.join(self.path, name), fs=self._fs or self.fs_name)

    def listdir(self) -> list[str]:
        return self.fs.listdir(self.path)

    def touch(self) -> None:
        """Create the directory and its parents if missing."""
        self.fs.mkdir(self.path)

    def remove(self, silent: bool = True) -> bool:
        """Remove the directory with everything in it."""
        return self.fs.remove(self.path, recursive=True, silent=silent)

    def walk_files(self) -> list[str]:
        """Paths of every file below this directory (not pylaw's checksum records)."""
        files = []
        for name in self.listdir():
            if name == RECORD_DIR:
                continue
            child = posixpath.join(self.path, name)
            if self.fs.stat(child).is_dir:
                files += RemoteDirectoryTarget(child, fs=self.fs).walk_files()
            else:
                files.append(child)
        return files

    def copy_to(self, destination: str, parallel: int | None = None) -> str:
        """Download the whole tree into the local directory ``destination`` (batch transfer)."""
        pairs = [(path, os.path.join(destination, posixpath.relpath(path, self.path)))
                 for path in self.walk_files()]
        os.makedirs(destination, exist_ok=True)
        self.fs.copy_many(pairs, "get", parallel=parallel)
        return destination


class DCacheTarget(RemoteFileTarget):
    """A file on the storage element named ``dcache`` (``[storage:dcache]`` in the config)."""

    def __init__(self, path: str, fs: str | RemoteFileSystem = "dcache") -> None:
        super().__init__(path, fs=fs)


class DCacheDirectoryTarget(RemoteDirectoryTarget):
    """A directory on the storage element named ``dcache``."""

    def __init__(self, path: str, fs: str | RemoteFileSystem = "dcache") -> None:
        super().__init__(path, fs=fs)
