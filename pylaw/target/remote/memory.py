"""An in-memory storage element (``memory://NAME/path``, ``interface = memory``), for tests and examples.

It keeps the whole file-interface contract (typed errors, non-recursive ``rmdir``,
``rename`` replacing a file, checksums, reads at offsets) without a server, so code built
on remote targets can be tested anywhere, and the contract suite
(:mod:`pylaw.target.remote.contract`) has a reference backend. The data lives in this
process only: every :class:`MemoryInterface` of the process sees the same stores (one
per ``NAME``), a forked or spawned process sees none of it. Copies go between memory://
and file:// URLs, or within memory://.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import threading
import time

from pylaw import errors
from pylaw.target.remote.checksum import Checksummer, check_algorithm
from pylaw.target.remote.interface import FileInterface, ReadHandle, RemoteStat, redact
from pylaw.target.remote.local import local_path, map_oserror

SCHEME = "memory://"


@dataclasses.dataclass(frozen=True)
class _File:
    data: bytes
    mtime: float


class _Store:
    """The tree of one ``memory://NAME``: files by path, directories as a set of paths."""

    def __init__(self) -> None:
        self.files: dict[str, _File] = {}
        self.dirs: dict[str, float] = {"/": time.time()}
        self.lock = threading.RLock()


_STORES: dict[str, _Store] = {}
_STORES_LOCK = threading.Lock()


def _split(url: str) -> tuple[_Store, str]:
    if not url.startswith(SCHEME):
        raise errors.RemoteNotSupportedError(f"the memory interface serves memory:// URLs, not {redact(url)}",
                                      url=redact(url))
    name, _, path = url[len(SCHEME):].partition("/")
    with _STORES_LOCK:
        store = _STORES.setdefault(name, _Store())
    return store, posixpath.normpath("/" + path)


def clear(name: str | None = None) -> None:
    """Forget the store ``name`` (default: every store of this process)."""
    with _STORES_LOCK:
        if name is None:
            _STORES.clear()
        else:
            _STORES.pop(name, None)


def _error(cls: type[errors.RemoteError], operation: str, url: str, problem: str) -> errors.RemoteError:
    return cls(f"memory {operation} failed for {redact(url)}: {problem}", operation=operation, url=redact(url))


class MemoryReadHandle(ReadHandle):
    """The bytes of the version opened (they are never changed in place: a rewrite stores new bytes)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def pread(self, offset: int, length: int) -> bytes:
        return self.data[offset:offset + length]


class MemoryInterface(FileInterface):
    """:class:`FileInterface` on process-local stores; timeouts do not apply."""

    schemes = (SCHEME,)

    def _file(self, store: _Store, path: str, operation: str, url: str) -> _File:
        found = store.files.get(path)
        if found is None:
            cls = errors.RemoteIsADirectoryError if path in store.dirs else errors.RemoteFileNotFoundError
            raise _error(cls, operation, url, "a directory" if path in store.dirs else "no such file")
        return found

    def _parent_dir(self, store: _Store, path: str, operation: str, url: str) -> None:
        parent = posixpath.dirname(path)
        if parent in store.files:
            raise _error(errors.RemoteNotADirectoryError, operation, url, f"{parent} is a file")
        if parent not in store.dirs:
            raise _error(errors.RemoteFileNotFoundError, operation, url, f"no directory {parent}")

    def stat(self, url: str, timeout: float | None = None) -> RemoteStat:
        store, path = _split(url)
        with store.lock:
            if path in store.dirs:
                return RemoteStat(0, store.dirs[path], True)
            found = self._file(store, path, "stat", url)
            return RemoteStat(len(found.data), found.mtime, False)

    def _directory(self, store: _Store, path: str, operation: str, url: str) -> None:
        if path in store.files:
            raise _error(errors.RemoteNotADirectoryError, operation, url, "not a directory")
        if path not in store.dirs:
            raise _error(errors.RemoteFileNotFoundError, operation, url, "no such directory")

    def listdir(self, url: str, timeout: float | None = None) -> list[str]:
        store, path = _split(url)
        with store.lock:
            self._directory(store, path, "listdir", url)
            return [posixpath.basename(p) for p in (*store.files, *store.dirs)
                    if p != "/" and posixpath.dirname(p) == path]

    def mkdir(self, url: str, parents: bool = True, timeout: float | None = None) -> None:
        store, path = _split(url)
        with store.lock:
            if path in store.files:
                raise _error(errors.RemoteFileExistsError, "mkdir", url, "a file has this name")
            if path in store.dirs:
                if not parents:
                    raise _error(errors.RemoteFileExistsError, "mkdir", url, "it exists")
                return
            if parents:
                self.mkdir(SCHEME + url[len(SCHEME):].partition("/")[0] + posixpath.dirname(path), True)
            self._parent_dir(store, path, "mkdir", url)
            store.dirs[path] = time.time()

    def unlink(self, url: str, timeout: float | None = None) -> None:
        store, path = _split(url)
        with store.lock:
            self._file(store, path, "unlink", url)
            del store.files[path]

    def rmdir(self, url: str, timeout: float | None = None) -> None:
        store, path = _split(url)
        with store.lock:
            self._directory(store, path, "rmdir", url)
            if any(p != path and p.startswith(path.rstrip("/") + "/") for p in (*store.files, *store.dirs)):
                raise _error(errors.RemoteDirectoryNotEmptyError, "rmdir", url, "not empty")
            if path != "/":
                del store.dirs[path]

    def rename(self, source: str, destination: str, timeout: float | None = None) -> None:
        store, path = _split(source)
        other, target = _split(destination)
        if other is not store:
            raise _error(errors.RemoteNotSupportedError, "rename", source, "cannot rename across stores")
        with store.lock:
            if path in store.dirs:
                raise _error(errors.RemoteNotSupportedError, "rename", source, "directories are not renamed")
            found = self._file(store, path, "rename", source)
            if target in store.dirs:
                raise _error(errors.RemoteIsADirectoryError, "rename", destination, "a directory has this name")
            self._parent_dir(store, target, "rename", destination)
            store.files[target] = found
            del store.files[path]

    def checksum(self, url: str, algorithm: str, timeout: float | None = None) -> str | None:
        name = check_algorithm(algorithm)
        summer = Checksummer((name,))
        summer.update(self._read(url, "checksum"))
        return summer.hexdigest(name)

    def open_read(self, url: str, timeout: float | None = None) -> ReadHandle:
        return MemoryReadHandle(self._read(url, "open"))

    def _read(self, url: str, operation: str) -> bytes:
        store, path = _split(url)
        with store.lock:
            return self._file(store, path, operation, url).data

    def copy(self, source: str, destination: str, overwrite: bool = True,
             timeout: float | None = None) -> None:
        what = f"{source} -> {destination}"
        if source.startswith("file://"):
            try:
                with open(local_path(source), "rb") as f:
                    data = f.read()
            except OSError as exc:
                raise map_oserror(exc, "copy", what) from exc
        else:
            data = self._read(source, "copy")
        if destination.startswith("file://"):
            path = local_path(destination)
            if not overwrite and os.path.exists(path):
                raise _error(errors.RemoteFileExistsError, "copy", what, "the destination exists")
            try:
                with open(path, "wb") as f:
                    f.write(data)
            except OSError as exc:
                raise map_oserror(exc, "copy", what) from exc
            return
        store, target = _split(destination)
        with store.lock:
            if target in store.files and not overwrite:
                raise _error(errors.RemoteFileExistsError, "copy", what, "the destination exists")
            if target in store.dirs:
                raise _error(errors.RemoteIsADirectoryError, "copy", what, "the destination is a directory")
            self._parent_dir(store, target, "copy", what)
            store.files[target] = _File(data, time.time())
