"""The file interface on the os module, for file:// storage elements (``interface = local``).

No library is needed: a storage element on a local or network-mounted directory (a
shared ``/nfs`` area, a test directory) works where GFAL2 is not installed, and with less
CPU per call than through GFAL2's file plugin. Every ``OSError`` is mapped to the
:mod:`pylaw.errors` type of its errno in :func:`map_oserror`, and nowhere else.

Like GFAL2's file plugin, ``checksum()`` computes the checksum from the data on disk (the
storage here is the local disk: there is nobody else to ask).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat as stat_module
from typing import Any

from pylaw import errors
from pylaw.target.remote.checksum import check_algorithm, file_checksums
from pylaw.target.remote.interface import ADVICE, FileInterface, ReadHandle, RemoteStat, redact

SCHEME = "file://"

#: errno -> error class; others become a plain errors.RemoteError
ERRNO_MAP: dict[int, type[errors.RemoteError]] = {
    errno.ENOENT: errors.RemoteFileNotFoundError,
    errno.EEXIST: errors.RemoteFileExistsError,
    errno.EACCES: errors.RemotePermissionError,
    errno.EPERM: errors.RemotePermissionError,
    errno.EROFS: errors.RemotePermissionError,
    errno.EISDIR: errors.RemoteIsADirectoryError,
    errno.ENOTDIR: errors.RemoteNotADirectoryError,
    errno.ENOTEMPTY: errors.RemoteDirectoryNotEmptyError,
    errno.EAGAIN: errors.TransientRemoteError,
    errno.EBUSY: errors.TransientRemoteError,
    errno.EIO: errors.TransientRemoteError,  # a network mount that lost its server
    errno.ESTALE: errors.TransientRemoteError,
}


def map_oserror(exc: OSError, operation: str, url: str) -> errors.RemoteError:
    """The pylaw error for an ``OSError`` of ``operation`` on ``url``."""
    cls = ERRNO_MAP.get(exc.errno or 0, errors.RemoteError)
    text = f"local {operation} failed for {redact(url)}: {exc.strerror or exc} (errno {exc.errno})"
    advice = ADVICE.get(cls)
    return cls(f"{text}; {advice}" if advice else text, operation=operation, url=redact(url), code=exc.errno)


def local_path(url: str) -> str:
    """The path of a file:// URL (``file:///a/b`` -> ``/a/b``)."""
    if not url.startswith(SCHEME):
        raise errors.RemoteNotSupportedError(f"the local interface serves file:// URLs only, not {redact(url)}",
                                      url=redact(url))
    return "/" + url[len(SCHEME):].lstrip("/")


class LocalReadHandle(ReadHandle):
    """An open local file: reads keep the version opened (the inode) when the path is replaced."""

    def __init__(self, url: str, fd: int) -> None:
        self.url, self.fd = url, fd

    def pread(self, offset: int, length: int) -> bytes:
        try:
            return os.pread(self.fd, length, offset)
        except OSError as exc:
            raise map_oserror(exc, "read", self.url) from exc

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class LocalInterface(FileInterface):
    """:class:`FileInterface` on local paths (``file:///abs/path``); timeouts do not apply."""

    schemes = (SCHEME,)

    def _os(self, operation: str, url: str, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except OSError as exc:
            raise map_oserror(exc, operation, url) from exc

    def stat(self, url: str, timeout: float | None = None) -> RemoteStat:
        st = self._os("stat", url, os.stat, local_path(url))
        is_dir = stat_module.S_ISDIR(st.st_mode)
        return RemoteStat(size=0 if is_dir else st.st_size, mtime=float(st.st_mtime), is_dir=is_dir)

    def listdir(self, url: str, timeout: float | None = None) -> list[str]:
        return list(self._os("listdir", url, os.listdir, local_path(url)))

    def listdir_stat(self, url: str, timeout: float | None = None) -> dict[str, RemoteStat]:
        """One ``scandir`` with the attributes of every entry."""
        def scan() -> dict[str, RemoteStat]:
            with os.scandir(local_path(url)) as entries:
                result = {}
                for entry in entries:
                    st, is_dir = entry.stat(), entry.is_dir()
                    result[entry.name] = RemoteStat(0 if is_dir else st.st_size, float(st.st_mtime), is_dir)
                return result
        return dict(self._os("listdir", url, scan))

    def mkdir(self, url: str, parents: bool = True, timeout: float | None = None) -> None:
        path = local_path(url)
        if parents:
            if os.path.isdir(path):
                return
            self._os("mkdir", url, os.makedirs, path)
        else:
            self._os("mkdir", url, os.mkdir, path)

    def unlink(self, url: str, timeout: float | None = None) -> None:
        self._os("unlink", url, os.unlink, local_path(url))

    def rmdir(self, url: str, timeout: float | None = None) -> None:
        self._os("rmdir", url, os.rmdir, local_path(url))

    def rename(self, source: str, destination: str, timeout: float | None = None) -> None:
        self._os("rename", source, os.replace, local_path(source), local_path(destination))

    def checksum(self, url: str, algorithm: str, timeout: float | None = None) -> str | None:
        name = check_algorithm(algorithm)
        return str(self._os("checksum", url, lambda: file_checksums(local_path(url), (name,)).hexdigest(name)))

    def open_read(self, url: str, timeout: float | None = None) -> ReadHandle:
        fd = self._os("open", url, os.open, local_path(url), os.O_RDONLY)
        if os.path.isdir(local_path(url)):
            os.close(fd)
            raise errors.RemoteIsADirectoryError(f"cannot read the directory {redact(url)}", operation="open",
                                          url=redact(url))
        return LocalReadHandle(url, fd)

    def copy(self, source: str, destination: str, overwrite: bool = True,
             timeout: float | None = None) -> None:
        what = f"{source} -> {destination}"
        target = local_path(destination)
        if not overwrite and os.path.exists(target):
            raise errors.RemoteFileExistsError(f"local copy failed for {redact(what)}: the destination exists",
                                        operation="copy", url=redact(what))
        self._os("copy", what, shutil.copyfile, local_path(source), target)
