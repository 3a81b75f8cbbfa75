"""The file-interface contract: the few primitives every remote storage backend implements.

Everything else (existence, recursive removal, atomic upload, retries, base-URL fallback,
caching, batch transfers) is derived from these primitives in
:mod:`pylaw.target.remote.filesystem`, so a new protocol library only has to provide this
class. Backends raise the typed errors of :mod:`pylaw.errors` (``RemoteFileNotFoundError``,
``RemoteFileExistsError``, ..., or a ``TransientRemoteError`` when retrying may help) and
never leak their own exception types. The contract test suite in ``tests/remote`` checks
every backend against these rules.
"""

from __future__ import annotations

import abc
import dataclasses
import re
from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar

from pylaw.errors import (
    RemoteCertificateError,
    RemoteConnectionError,
    RemoteDirectoryNotEmptyError,
    RemoteError,
    RemoteFileNotFoundError,
    RemoteNotSupportedError,
    RemotePermissionError,
    RemoteTimeoutError,
    StorageConfigError,
)


@dataclasses.dataclass(frozen=True)
class RemoteStat:
    """What the cache and ``exists()`` need to know about a remote path."""

    size: int
    mtime: float
    is_dir: bool


_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")
_QUERY = re.compile(r"(://[^\s?]*)\?[^\s]*")


def redact(text: str) -> str:
    """``text`` (a URL or a message with URLs) without user info and query strings.

    Credentials and tokens hide there (``davs://user:pw@host``, ``?authz=...``); every
    message pylaw builds from a URL goes through this, so they never reach a log.
    """
    if "@" not in text and "?" not in text:
        return text
    return _QUERY.sub(r"\1?<redacted>", _USERINFO.sub("<redacted>@", text))


#: what to do about an error, appended to its message by every backend
ADVICE: dict[type[RemoteError], str] = {
    RemoteFileNotFoundError: "check the path and the storage element's base URL",
    RemotePermissionError: "check your credentials (proxy, token) and the ACLs of the storage",
    RemoteConnectionError: "check that the storage is reachable; pylaw retries these errors",
    RemoteTimeoutError: "raise the storage element's `timeout`; pylaw retries these errors",
    RemoteDirectoryNotEmptyError: "remove it recursively",
    RemoteCertificateError: "trust the server's certificate authority: put it (hashed, as in "
                            "/etc/grid-security/certificates) in the directory named by X509_CERT_DIR",
}


@dataclasses.dataclass(frozen=True)
class InterfaceSettings:
    """What a ``[storage:NAME]`` section tells its interface, for :meth:`FileInterface.parse_config`.

    ``options`` holds the raw values of the interface's own :attr:`FileInterface.config_keys`
    that the section sets; ``urls`` every base URL of the section (all operations).
    """

    section: str
    urls: tuple[str, ...]
    options: Mapping[str, str]
    transfer_timeout: float = 0.0

    def error(self, key: str, problem: str) -> StorageConfigError:
        """A config error naming the section, the key and its value."""
        value = self.options.get(key)
        shown = f"{key} = {value!r}" if value is not None else key
        return StorageConfigError(f"{self.section}: {shown} {problem}")


class ReadHandle(abc.ABC):
    """A remote file open for reading at offsets: what :meth:`FileInterface.open_read` returns.

    ``pins_version`` says whether the handle keeps reading the version it opened when the
    path is replaced meanwhile (an open file on xrootd or a local disk does; HTTP range
    requests do not, so readers check the file's stat after every block of such handles).
    """

    pins_version: bool = True

    @abc.abstractmethod
    def pread(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``; fewer only at the end of the file, none past it."""

    def close(self) -> None:  # noqa: B027 - optional: most handles hold something, memory's does not
        """Release the handle (the default holds nothing)."""


class FileInterface(abc.ABC):
    """Primitives on absolute URLs (``root://host//path``, ``davs://...``, ``file:///...``).

    Contract for every method:

    - a missing path raises ``RemoteFileNotFoundError``; an existing one where none may be
      ``RemoteFileExistsError``; a file where a directory is needed
      ``RemoteNotADirectoryError`` and vice versa;
    - failures that may succeed when retried raise ``TransientRemoteError`` (or a
      subclass); nothing else is retried by the layers above;
    - ``timeout`` (seconds) bounds one call; None means the backend's default.

    An interface holding connections releases them in :meth:`close` (also on leaving a
    ``with`` block); using it again afterwards opens new ones.

    A storage element names its interface with ``interface = NAME`` (see
    :mod:`pylaw.target.remote.registry`); the class declares the extra section keys it
    reads (:attr:`config_keys`) and the URL schemes it serves (:attr:`schemes`), and checks
    their values in :meth:`parse_config`.
    """

    #: keys of a ``[storage:NAME]`` section this interface reads, beyond the common ones
    config_keys: ClassVar[tuple[str, ...]] = ()
    #: URL prefixes it serves (``("root://",)``); empty: whatever the library behind it can reach
    schemes: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def parse_config(cls, settings: InterfaceSettings) -> dict[str, Any]:
        """Keyword arguments of the constructor from a storage section; StorageConfigError on a bad value.

        The default checks the URL schemes and passes nothing; interfaces with options of
        their own extend it (their errors name ``settings.section`` and the key).
        """
        if cls.schemes:
            others = [url for url in settings.urls if not url.startswith(cls.schemes)]
            if others:
                raise StorageConfigError(
                    f"{settings.section}: interface {cls.__name__} serves {', '.join(cls.schemes)} URLs only, "
                    f"not {[redact(url) for url in others]}; choose another interface for these bases")
        return {}

    def close(self) -> None:  # noqa: B027 - optional: only interfaces holding connections override it
        """Release connections and other resources; the default holds none."""

    def __enter__(self) -> FileInterface:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @abc.abstractmethod
    def stat(self, url: str, timeout: float | None = None) -> RemoteStat:
        """Size, modification time and type of ``url``."""

    @abc.abstractmethod
    def listdir(self, url: str, timeout: float | None = None) -> list[str]:
        """Names (not paths) in the directory ``url``, without ``.`` and ``..``."""

    @abc.abstractmethod
    def mkdir(self, url: str, parents: bool = True, timeout: float | None = None) -> None:
        """Create the directory ``url``; with ``parents``, also missing parents and no error if it exists."""

    @abc.abstractmethod
    def unlink(self, url: str, timeout: float | None = None) -> None:
        """Remove the file ``url``."""

    @abc.abstractmethod
    def rmdir(self, url: str, timeout: float | None = None) -> None:
        """Remove the directory ``url`` (a non-empty one only where ``rmdir_is_recursive(url)``)."""

    @abc.abstractmethod
    def rename(self, source: str, destination: str, timeout: float | None = None) -> None:
        """Move ``source`` to ``destination`` on the same storage, replacing a file there."""

    @abc.abstractmethod
    def copy(self, source: str, destination: str, overwrite: bool = True,
             timeout: float | None = None) -> None:
        """Copy a file between two URLs: put (file:// to remote), get, or third-party.

        The destination's parent directory must exist. A failed copy may leave a partial
        destination: callers that need atomicity copy to a temporary name and ``rename``.
        """

    def listdir_stat(self, url: str, timeout: float | None = None) -> dict[str, RemoteStat]:
        """Name -> stat of everything in the directory ``url``.

        Derived from ``listdir`` and ``stat``; backends that can list with attributes in one
        request (GFAL2's ``readpp``) override it: batch transfers check sizes this way.
        """
        base = url.rstrip("/")
        return {name: self.stat(f"{base}/{name}", timeout) for name in self.listdir(url, timeout)}

    def fork_unsafe(self, url: str) -> bool:
        """Whether calls on ``url`` must not run in a process forked after this one used them.

        True for XrdCl-based access (see :mod:`pylaw.target.remote.agent`): such calls
        then run in a storage agent process. The default: False.
        """
        return False

    def tls_per_request(self, url: str) -> bool:
        """Whether calls on ``url`` set up TLS per request, and so run cheaper in a lean-TLS agent.

        See :mod:`pylaw.target.remote.tls`. The default: False.
        """
        return False

    def rmdir_is_recursive(self, url: str) -> bool:
        """Whether ``rmdir(url)`` removes a non-empty directory itself (else callers walk the tree)."""
        return False

    def checksum(self, url: str, algorithm: str, timeout: float | None = None) -> str | None:
        """The checksum the storage reports for the file ``url`` (lower-case hex), or None.

        ``algorithm`` is one of :data:`pylaw.target.remote.checksum.ALGORITHMS`. None means
        this storage cannot report that algorithm (not configured, not implemented by the
        server or the protocol); a backend never computes or guesses one it was not told.
        A missing file raises ``RemoteFileNotFoundError`` as usual. The default: None.
        """
        return None

    def open_read(self, url: str, timeout: float | None = None) -> ReadHandle:
        """The file ``url`` open for reads at offsets (streaming ``open("r")``).

        ``timeout`` bounds the open and each read. The default raises
        ``RemoteNotSupportedError``: readers then download the whole file first.
        """
        raise RemoteNotSupportedError(f"{type(self).__name__} cannot read {redact(url)} in blocks",
                                      operation="open", url=redact(url))

    def read_range(self, url: str, offset: int, length: int, timeout: float | None = None) -> bytes:
        """Up to ``length`` bytes of ``url`` from ``offset`` in one self-contained call (open, read, close).

        What a storage agent serves for a streaming read (a read handle cannot cross its
        pipe); ``length`` 0 only opens the file, to raise its errors. Derived from ``open_read``.
        """
        handle = self.open_read(url, timeout)
        try:
            return handle.pread(offset, length) if length else b""
        finally:
            handle.close()

    def exists(self, url: str, timeout: float | None = None) -> bool:
        """Whether ``url`` exists (derived from ``stat``)."""
        try:
            self.stat(url, timeout)
        except RemoteFileNotFoundError:
            return False
        return True
