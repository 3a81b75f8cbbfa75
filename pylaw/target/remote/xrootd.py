"""The file interface on XRootD's own client (XrdCl), for root:// storage elements.

GFAL2 reaches xrootd through the same XrdCl library, but adds a plugin layer that costs
3-5x the client CPU of each call (a ``stat`` on loopback: 0.27 ms against 0.08 ms; a
``rename``: 0.42 ms against 0.07 ms): on a batch node that matters once tasks check or
move thousands of files. A storage element chooses this interface with
``interface = xrootd`` in its ``[storage:NAME]`` section; its bases must all be root://.

The ``XRootD`` Python bindings (Debian ``python3-xrootd``, or ``pip install xrootd``) are
imported lazily, and a missing package gives an install hint. Every failed
``XRootDStatus`` is translated to a :mod:`pylaw.errors` type in :func:`map_status` and
nowhere else. XrdCl objects are thread-safe; a forked process reaches them through an agent
(:mod:`pylaw.target.remote.agent`).

Protocol facts used here (xrootd 5.5): a server answer carries a kXR code in ``errno``
(3011 not found, 3018 exists, 3005 for a non-empty directory or a file where a
directory is needed, told apart by the message); client-side failures carry an XrdCl code
(101-110 connection, 103 and 206 timeouts) and no errno. ``mkdir`` of an existing
directory succeeds; ``mv`` replaces an existing file.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from pylaw import processenv
from pylaw.errors import (
    RemoteBackendMissingError,
    RemoteConnectionError,
    RemoteDirectoryNotEmptyError,
    RemoteError,
    RemoteFileExistsError,
    RemoteFileNotFoundError,
    RemoteIsADirectoryError,
    RemoteNotADirectoryError,
    RemoteNotSupportedError,
    RemotePermissionError,
    RemoteTimeoutError,
    TransientRemoteError,
)
from pylaw.target.remote.agent import disable_xrdcl_fork_handler, may_read_in_agent, may_run_in_agent
from pylaw.target.remote.checksum import check_algorithm, normalize
from pylaw.target.remote.interface import ADVICE, FileInterface, InterfaceSettings, ReadHandle, RemoteStat, redact
from pylaw.target.remote.progress import byte_reporter

INSTALL_HINT = ("the XRootD Python bindings are not installed: on Debian/Ubuntu run "
                "`apt-get install python3-xrootd` and link XRootD/ and pyxrootd/ into your venv "
                "(tests/services/install_remote.sh VENV does both), or `pip install xrootd`; "
                "or use `interface = gfal` for this storage element")

SCHEMES = ("root://", "xroot://")

#: kXR codes of server answers -> error class (XProtocol.hh); unlisted ones are plain RemoteErrors.
SERVER_CODES: dict[int, type[RemoteError]] = {
    3003: TransientRemoteError,  # file locked
    3007: TransientRemoteError,  # I/O error
    3010: RemotePermissionError,  # not authorized
    3011: RemoteFileNotFoundError,
    3012: TransientRemoteError,  # server error
    3013: RemoteNotSupportedError,
    3014: TransientRemoteError,  # no server available for the request
    3015: RemoteIsADirectoryError,  # not a file
    3016: RemoteIsADirectoryError,
    3018: RemoteFileExistsError,
    3020: TransientRemoteError,  # in progress
    3024: TransientRemoteError,  # overloaded
    3025: RemotePermissionError,  # read-only file system
    3030: RemotePermissionError,  # authentication failed
    3034: RemoteTimeoutError,
    3035: RemoteTimeoutError,
}

#: kXR_FSError (3005) covers several errnos; its message tells which.
FS_ERROR_HINTS: tuple[tuple[str, type[RemoteError]], ...] = (
    ("not empty", RemoteDirectoryNotEmptyError),
    ("not a directory", RemoteNotADirectoryError),
    ("is a directory", RemoteIsADirectoryError),
    ("no such file", RemoteFileNotFoundError),
    ("permission denied", RemotePermissionError),
)

#: XrdCl's own status codes (XrdClStatus.hh) -> error class.
CLIENT_CODES: dict[int, type[RemoteError]] = {
    **dict.fromkeys((101, 102, 104, 105, 107, 108, 109, 110), RemoteConnectionError),
    103: RemoteTimeoutError,  # socket timeout
    206: RemoteTimeoutError,  # operation expired
    207: TransientRemoteError,  # operation interrupted
    304: RemoteFileNotFoundError,
    13: RemoteNotSupportedError,
    15: RemoteNotSupportedError,
}

ERROR_RESPONSE = 400  # XrdCl: "the server answered with an error", details in errno

#: bytes per read/write request of a transfer
CHUNK = 8 << 20


def map_status(status: Any, operation: str, url: str) -> RemoteError:
    """The pylaw error for a failed ``XRootDStatus`` of ``operation`` on ``url``."""
    code, server_code = int(status.code), int(status.errno)
    message = str(status.message).strip()
    cls: type[RemoteError] = RemoteError
    if code == ERROR_RESPONSE and server_code == 3005:
        lowered = message.lower()
        cls = next((hint for text, hint in FS_ERROR_HINTS if text in lowered), RemoteError)
    elif code == ERROR_RESPONSE:
        cls = SERVER_CODES.get(server_code, RemoteError)
    else:
        cls = CLIENT_CODES.get(code, RemoteError)
    text = f"xrootd {operation} failed for {redact(url)}: {redact(message)} (code {code}, errno {server_code})"
    advice = ADVICE.get(cls)
    return cls(f"{text}; {advice}" if advice else text, operation=operation, url=redact(url),
               code=server_code or code)


#: XrdCl settings pylaw changes: give up on dead servers in seconds rather than minutes, and
#: after a socket error let pylaw's retry policy decide instead of failing every request to
#: that server for the "stream error window" (30 min by default).
CLIENT_SETTINGS = {"ConnectionRetry": 1, "ConnectionWindow": 10, "RequestTimeout": 60, "StreamTimeout": 60,
                   "StreamErrorWindow": 0}


def client_defaults() -> None:
    """Export pylaw's XrdCl settings as ``XRD_*`` variables; values the user exported win.

    XrdCl reads them once, when the library initialises (the first xrootd operation through
    GFAL2, or the import of the XRootD bindings).
    """
    for key, value in CLIENT_SETTINGS.items():
        processenv.set_default(f"XRD_{key.upper()}", str(value))
    disable_xrdcl_fork_handler()


_client: Any = None


def import_xrootd() -> Any:
    """The ``XRootD.client`` module, or RemoteBackendMissingError with an install hint.

    XrdCl may have initialised before pylaw set its defaults (GFAL2 loads the same library),
    so the ``XRD_*`` values are also applied explicitly, once.
    """
    global _client
    if _client is None:
        client_defaults()
        try:
            from XRootD import client
        except ImportError as exc:
            raise RemoteBackendMissingError(INSTALL_HINT) from exc
        for key in CLIENT_SETTINGS:
            value = os.environ[f"XRD_{key.upper()}"]
            if value.strip().isdigit():
                client.EnvPutInt(key, int(value))
        _client = client
    return _client


def split_url(url: str) -> tuple[str, str]:
    """``root://host:port//path?query`` -> (``root://host:port``, ``//path?query``)."""
    if not url.startswith(SCHEMES):
        raise RemoteNotSupportedError(f"the xrootd interface only serves root:// URLs, not {redact(url)}",
                                      url=redact(url))
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}", slash + path


class XRootDInterface(FileInterface):
    """:class:`FileInterface` on the ``XRootD`` Python bindings (root:// URLs only).

    A copy is streamed in requests of :data:`CHUNK` bytes, each bounded by the call's
    ``timeout``, so big files are not cut by it; ``transfer_timeout`` (seconds, 0 = none)
    bounds a whole copy.
    """

    schemes = SCHEMES

    def __init__(self, transfer_timeout: float = 0) -> None:
        self.transfer_timeout = transfer_timeout
        self._fresh_state()

    @classmethod
    def parse_config(cls, settings: InterfaceSettings) -> dict[str, Any]:
        """root:// bases only; ``transfer_timeout``. XrdCl itself is configured by ``XRD_*`` variables."""
        return {**super().parse_config(settings), "transfer_timeout": settings.transfer_timeout}

    def _fresh_state(self) -> None:
        self._filesystems: dict[str, Any] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Drop the XrdCl file-system objects (one per server); new ones are made on use."""
        with self._lock:
            self._filesystems = {}

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (targets travel to worker processes); XrdCl objects are per process."""
        return {"transfer_timeout": self.transfer_timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.transfer_timeout = state["transfer_timeout"]
        self._fresh_state()

    def _filesystem(self, host: str) -> Any:
        with self._lock:  # never used in a forked child (pylaw.target.remote.agent)
            fs = self._filesystems.get(host)
            if fs is None:
                fs = self._filesystems[host] = import_xrootd().FileSystem(host)
            return fs

    def fork_unsafe(self, url: str) -> bool:
        return True  # all of it is XrdCl

    @staticmethod
    def _check(result: tuple[Any, Any], operation: str, url: str) -> Any:
        status, response = result
        if not status.ok:
            raise map_status(status, operation, url)
        return response

    def _fs_call(self, operation: str, url: str, method: str, *args: Any, timeout: float | None = None) -> Any:
        host, path = split_url(url)
        call = getattr(self._filesystem(host), method)
        return self._check(call(path, *args, timeout=_seconds(timeout)), operation, url)

    @may_run_in_agent
    def stat(self, url: str, timeout: float | None = None) -> RemoteStat:
        return _remote_stat(self._fs_call("stat", url, "stat", timeout=timeout), _is_dir_flag())

    @may_run_in_agent
    def listdir(self, url: str, timeout: float | None = None) -> list[str]:
        flags = import_xrootd().flags.DirListFlags
        listing = self._fs_call("listdir", url, "dirlist", flags.NONE, timeout=timeout)
        return [entry.name for entry in listing if entry.name not in (".", "..")]

    @may_run_in_agent
    def listdir_stat(self, url: str, timeout: float | None = None) -> dict[str, RemoteStat]:
        """One ``dirlist`` with attributes (kXR_dirlist with dstat: one request)."""
        flags = import_xrootd().flags.DirListFlags
        listing = self._fs_call("listdir", url, "dirlist", flags.STAT, timeout=timeout)
        is_dir = _is_dir_flag()
        return {entry.name: _remote_stat(entry.statinfo, is_dir) for entry in listing
                if entry.name not in (".", "..")}

    @may_run_in_agent
    def mkdir(self, url: str, parents: bool = True, timeout: float | None = None) -> None:
        flags = import_xrootd().flags.MkDirFlags
        if not parents and self.exists(url, timeout):  # xrootd itself accepts an existing directory
            raise RemoteFileExistsError(f"xrootd mkdir failed for {redact(url)}: it exists", operation="mkdir",
                                        url=redact(url))
        try:
            self._fs_call("mkdir", url, "mkdir", flags.MAKEPATH if parents else flags.NONE, timeout=timeout)
        except RemoteFileExistsError:
            if not self.stat(url, timeout).is_dir:
                raise

    @may_run_in_agent
    def unlink(self, url: str, timeout: float | None = None) -> None:
        self._fs_call("unlink", url, "rm", timeout=timeout)

    @may_run_in_agent
    def rmdir(self, url: str, timeout: float | None = None) -> None:
        self._fs_call("rmdir", url, "rmdir", timeout=timeout)

    @may_run_in_agent
    def rename(self, source: str, destination: str, timeout: float | None = None) -> None:
        host, path = split_url(source)
        dest_host, dest_path = split_url(destination)
        if dest_host != host:
            raise RemoteNotSupportedError(f"xrootd cannot rename across servers: {redact(source)} -> "
                                          f"{redact(destination)}", operation="rename", url=redact(source))
        self._check(self._filesystem(host).mv(path, dest_path, timeout=_seconds(timeout)), "rename", source)

    @may_run_in_agent
    def checksum(self, url: str, algorithm: str, timeout: float | None = None) -> str | None:
        """kXR_query of the checksum (``cks.type`` names the algorithm); None where the server has none.

        The answer reads ``adler32 <hex>``. A server without ``xrootd.chksum`` answers 3013
        ("query chksum is not supported"), one configured without the algorithm 3012 ("md5
        checksum not supported"); both are None. XrdCks keeps a computed checksum with the
        file's mtime in whole seconds and answers it while the mtime is unchanged: a rewrite
        of the same file within the same second reports the old checksum (pylaw's uploads
        always publish a new file by rename, so they are not affected).
        """
        name = check_algorithm(algorithm)
        host, path = split_url(url)
        query = f"{path}{'&' if '?' in path else '?'}cks.type={name}"
        client = import_xrootd()
        try:
            answer = self._check(self._filesystem(host).query(client.flags.QueryCode.CHECKSUM, query,
                                                              timeout=_seconds(timeout)), "checksum", url)
        except RemoteNotSupportedError:
            return None
        except TransientRemoteError as exc:
            if "checksum not supported" in str(exc).lower():
                return None
            raise
        reported, _, value = bytes(answer).decode("ascii", "replace").strip("\x00 \n").partition(" ")
        if reported.lower() != name:  # an old server ignoring cks.type answers its default algorithm
            return None
        return normalize(name, value)

    @may_run_in_agent
    def copy(self, source: str, destination: str, overwrite: bool = True,
             timeout: float | None = None) -> None:
        """Stream ``source`` to ``destination`` in chunks: put, get, or root:// to root:// via this client."""
        what = f"{source} -> {destination}"
        deadline = time.monotonic() + self.transfer_timeout if self.transfer_timeout else None
        if source.startswith("file://") and destination.startswith(SCHEMES):
            with open(source[len("file://"):], "rb") as local:
                chunks = self._until(deadline, iter(lambda: local.read(CHUNK), b""), what)
                self._write(destination, overwrite, timeout, chunks, what)
        elif source.startswith(SCHEMES) and destination.startswith("file://"):
            path = destination[len("file://"):]
            if not overwrite and os.path.exists(path):
                raise RemoteFileExistsError(f"xrootd copy failed for {redact(what)}: {path} exists",
                                            operation="copy", url=redact(what))
            chunks = self._read(source, timeout, what)  # a missing source fails before the local file exists
            with open(path, "wb") as local:
                for chunk in self._until(deadline, chunks, what):
                    local.write(chunk)
        elif source.startswith(SCHEMES) and destination.startswith(SCHEMES):
            chunks = self._until(deadline, self._read(source, timeout, what), what)
            self._write(destination, overwrite, timeout, chunks, what)
        else:
            raise RemoteNotSupportedError(f"the xrootd interface cannot copy {redact(what)}: one side must be "
                                          "root://, the other root:// or file://", operation="copy",
                                          url=redact(what))

    def _until(self, deadline: float | None, chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
        """``chunks``, or RemoteTimeoutError once ``deadline`` (monotonic) has passed; bytes go to the reporter."""
        report, moved = byte_reporter(), 0
        for chunk in chunks:
            if report is not None and moved:
                report(moved)
            moved += len(chunk)
            if deadline is not None and time.monotonic() > deadline:
                raise RemoteTimeoutError(f"xrootd copy of {redact(what)} took longer than transfer_timeout = "
                                         f"{self.transfer_timeout:g} s; raise it for big files", operation="copy",
                                         url=redact(what))
            yield chunk

    @may_run_in_agent
    def read_range(self, url: str, offset: int, length: int, timeout: float | None = None) -> bytes:
        return super().read_range(url, offset, length, timeout)

    @may_read_in_agent
    def open_read(self, url: str, timeout: float | None = None) -> ReadHandle:
        """An XrdCl ``File`` open for reading: the server keeps reading the version opened."""
        split_url(url)  # refuses other schemes
        client = import_xrootd()
        handle = client.File()
        self._check(handle.open(url, client.flags.OpenFlags.READ, timeout=_seconds(timeout)), "open", url)
        return XRootDReadHandle(self, url, timeout, handle)

    def _read(self, url: str, timeout: float | None, what: str) -> Iterator[bytes]:
        """The bytes of the remote file ``url``, chunk by chunk; opened before the first chunk is asked for."""
        client = import_xrootd()
        handle = client.File()
        self._check(handle.open(url, client.flags.OpenFlags.READ, timeout=_seconds(timeout)), "copy", what)
        return self._chunks(handle, timeout, what)

    def _chunks(self, handle: Any, timeout: float | None, what: str) -> Iterator[bytes]:
        try:
            offset = 0
            while True:
                chunk = self._check(handle.read(offset, CHUNK, timeout=_seconds(timeout)), "copy", what)
                if not chunk:
                    return
                offset += len(chunk)
                yield chunk
        finally:
            handle.close(timeout=_seconds(timeout))

    def _write(self, url: str, overwrite: bool, timeout: float | None, chunks: Iterator[bytes],
               what: str) -> None:
        """Create ``url`` from ``chunks``; the close is checked: the server has every byte after it."""
        client = import_xrootd()
        flags = client.flags.OpenFlags
        handle = client.File()
        mode = flags.DELETE if overwrite else flags.NEW
        self._check(handle.open(url, mode, timeout=_seconds(timeout)), "copy", what)
        try:
            offset = 0
            for chunk in chunks:
                self._check(handle.write(chunk, offset, len(chunk), timeout=_seconds(timeout)), "copy", what)
                offset += len(chunk)
        except BaseException:
            handle.close(timeout=_seconds(timeout))
            raise
        self._check(handle.close(timeout=_seconds(timeout)), "copy", what)


class XRootDReadHandle(ReadHandle):
    """An open XrdCl ``File``, read at offsets."""

    def __init__(self, interface: XRootDInterface, url: str, timeout: float | None, handle: Any) -> None:
        self.interface, self.url, self.timeout, self.handle = interface, url, timeout, handle

    def pread(self, offset: int, length: int) -> bytes:
        return bytes(self.interface._check(self.handle.read(offset, length, timeout=_seconds(self.timeout)),
                                           "read", self.url))

    def close(self) -> None:
        self.handle.close(timeout=_seconds(self.timeout))


def _seconds(timeout: float | None) -> int:
    """XrdCl's timeout argument: whole seconds, 0 for its default."""
    return 0 if timeout is None else max(1, int(timeout))


def _is_dir_flag() -> int:
    return int(import_xrootd().flags.StatInfoFlags.IS_DIR)


def _remote_stat(info: Any, is_dir_flag: int) -> RemoteStat:
    return RemoteStat(size=int(info.size), mtime=float(info.modtime), is_dir=bool(info.flags & is_dir_flag))
