"""Where a pilot work queue keeps its files: a local directory, or a storage element.

The lease protocol of :mod:`pylaw.job.workqueue` needs four primitives from a store, and
nothing else: an **exclusive create** (the one compare-and-swap: of many pilots creating
the same name, exactly one succeeds), an atomic **replace**, a **listing with modification
times**, and the store's own **clock** (lease ages are measured against the clock that
stamped them, so the pilots' clocks need not agree).

- :class:`LocalQueueStore`: a directory every pilot sees (the job directory on a shared
  file system). Exclusive create is ``link(2)`` of a complete temporary file: atomic, and
  a reader never sees a half-written file. Needs a file system whose ``link`` is atomic
  (local disks, NFSv3+, Lustre, GPFS; not some FUSE file systems).
- :class:`RemoteQueueStore`: a directory on a storage element through pylaw's XRootD file
  interface, for pilots that share no file system with the submitter. Exclusive create is
  the rename of a complete private directory onto the entry's name, which the server's
  rename(2) refuses atomically when the name is taken. WebDAV through GFAL2 promises no
  such operation, so it is refused as a queue store.
"""

from __future__ import annotations

import abc
import contextlib
import os
import tempfile
import time
import uuid

from pylaw.errors import ConfigError, RemoteDirectoryNotEmptyError, RemoteFileExistsError, RemoteFileNotFoundError
from pylaw.target.remote.interface import FileInterface


class QueueStore(abc.ABC):
    """Names are relative (``claims/12.3``); every directory a name lives in is made by :meth:`prepare`."""

    @abc.abstractmethod
    def prepare(self, *directories: str) -> None:
        """Create the directories (no error if they exist)."""

    @abc.abstractmethod
    def create(self, name: str, data: bytes) -> bool:
        """Create ``name`` holding ``data`` if nobody has: True for the one caller that did."""

    @abc.abstractmethod
    def replace(self, name: str, data: bytes) -> None:
        """Write ``name`` atomically (readers see the old or the new content); renews its mtime."""

    @abc.abstractmethod
    def read(self, name: str) -> bytes | None:
        """The content of ``name``, None if it does not exist."""

    @abc.abstractmethod
    def listing(self, directory: str) -> dict[str, float]:
        """``{name: mtime}`` of the files in ``directory`` (one request)."""

    @abc.abstractmethod
    def now(self) -> float:
        """The current time on the store's clock (the clock that stamps mtimes)."""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the queue is, for messages and for pilots (a path or a URL)."""


class LocalQueueStore(QueueStore):
    """A queue in a directory of a (possibly shared) file system."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    @property
    def location(self) -> str:
        return self.root

    def path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def prepare(self, *directories: str) -> None:
        for directory in ("", *directories):
            os.makedirs(self.path(directory), mode=0o777, exist_ok=True)
            with contextlib.suppress(PermissionError):  # pilots may run as another user (HTCondor)
                os.chmod(self.path(directory), 0o777)

    def _temporary(self, name: str, data: bytes) -> str:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(self.path(name)))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666)
        return tmp

    def create(self, name: str, data: bytes) -> bool:
        tmp = self._temporary(name, data)
        try:
            os.link(tmp, self.path(name))  # fails with EEXIST for all but one: the compare-and-swap
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    def replace(self, name: str, data: bytes) -> None:
        os.replace(self._temporary(name, data), self.path(name))

    def read(self, name: str) -> bytes | None:
        try:
            with open(self.path(name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def listing(self, directory: str) -> dict[str, float]:
        found = {}
        with os.scandir(self.path(directory)) as entries:
            for entry in entries:
                if not entry.name.startswith(".tmp-"):
                    with contextlib.suppress(FileNotFoundError):
                        found[entry.name] = entry.stat().st_mtime
        return found

    def now(self) -> float:
        return time.time()  # the file system stamps mtimes with this machine's clock (NFS: see the docs)


class RemoteQueueStore(QueueStore):
    """A queue in a directory of a storage element (``root://host//path``), through a file interface.

    Every entry is a *directory* holding one file, ``data``. Exclusive create builds a private
    directory ``.tmp-<random>/data`` and renames it to the entry's name: the server's rename(2)
    moves a directory onto a missing name, and refuses a non-empty one ("directory not empty"),
    atomically. (XRootD's ``kXR_new`` open flag is no such compare-and-swap: the server checks
    with ``lstat`` and then opens with ``O_CREAT|O_TRUNC``, so two clients can both create,
    the second truncating the first, which this module's tests saw happen; and its mkdir
    accepts an existing directory.) Replacing writes ``data`` anew by a file rename inside
    the entry, which also renews the entry's mtime, the lease clock.
    """

    def __init__(self, url: str, interface: FileInterface, scratch: str = "") -> None:
        from pylaw.target.remote.xrootd import XRootDInterface

        if not isinstance(interface, XRootDInterface):
            raise ConfigError(f"the pilot queue {url} needs a storage interface whose rename refuses a non-empty "
                              f"directory atomically (XRootD's); {type(interface).__name__} does not promise "
                              f"it, so two pilots could both claim a branch: use a root:// storage element with "
                              f"interface = xrootd, or a shared file system")
        self.url = url.rstrip("/")
        self.interface = interface
        self.scratch = scratch or tempfile.gettempdir()
        self.clock_name = f"clock/{uuid.uuid4().hex}"

    @property
    def location(self) -> str:
        return self.url

    def _upload(self, url: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix="pylaw-queue-", dir=self.scratch)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            self.interface.copy(f"file://{tmp}", url, overwrite=True)
        finally:
            os.unlink(tmp)

    def prepare(self, *directories: str) -> None:
        for directory in ("", "clock", *directories):
            self.interface.mkdir(f"{self.url}/{directory}".rstrip("/"), parents=True)

    def create(self, name: str, data: bytes) -> bool:
        parent, _, _ = name.rpartition("/")
        tmp = f"{self.url}/{parent + '/' if parent else ''}.tmp-{uuid.uuid4().hex}"
        self.interface.mkdir(tmp, parents=False)
        self._upload(f"{tmp}/data", data)
        try:
            self.interface.rename(tmp, f"{self.url}/{name}")  # the compare-and-swap
        except (RemoteDirectoryNotEmptyError, RemoteFileExistsError):
            self.interface.unlink(f"{tmp}/data")
            self.interface.rmdir(tmp)
            return False
        return True

    def replace(self, name: str, data: bytes) -> None:
        self.create(name, data)  # the first write of an entry (a pilot's record); else it exists already
        tmp = f"{self.url}/{name}/.tmp-{uuid.uuid4().hex[:8]}"
        self._upload(tmp, data)
        self.interface.rename(tmp, f"{self.url}/{name}/data")  # a file over a file: replaced in one step

    def read(self, name: str) -> bytes | None:
        fd, tmp = tempfile.mkstemp(prefix="pylaw-queue-", dir=self.scratch)
        os.close(fd)
        os.unlink(tmp)
        try:
            self.interface.copy(f"{self.url}/{name}/data", f"file://{tmp}", overwrite=False)
        except RemoteFileNotFoundError:
            return None
        try:
            with open(tmp, "rb") as f:
                return f.read()
        finally:
            os.unlink(tmp)

    def listing(self, directory: str) -> dict[str, float]:
        stats = self.interface.listdir_stat(f"{self.url}/{directory}")
        return {name: stat.mtime for name, stat in stats.items() if not name.startswith(".tmp-") and stat.is_dir}

    def now(self) -> float:
        """The server's clock: the mtime it gives a file written just now (one upload and one stat)."""
        self._upload(f"{self.url}/{self.clock_name}", b"")
        return self.interface.stat(f"{self.url}/{self.clock_name}").mtime


def open_store(location: str) -> QueueStore:
    """The store at ``location``: a local path, or a root:// URL (read through the XRootD interface)."""
    if "://" not in location:
        return LocalQueueStore(location)
    if not location.startswith(("root://", "xroot://")):
        raise ConfigError(f"pilot queue {location}: give a directory on a shared file system or a root:// URL")
    from pylaw.target.remote.xrootd import XRootDInterface

    return RemoteQueueStore(location, XRootDInterface())
