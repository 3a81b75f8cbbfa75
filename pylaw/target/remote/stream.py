"""Streaming reads of remote files: ``open("r")`` reads blocks on demand instead of downloading the file.

:func:`open_stream` gives a buffered (binary) or text file object over a
:class:`RemoteReader`, which fetches the bytes asked for with the interface's
``open_read()`` handle (:class:`~pylaw.target.remote.interface.ReadHandle`): ``read(n)``,
``readline()``, iteration, ``seek()`` and ``tell()`` work as on a local file, and only the
blocks touched travel. The buffer is one block (``block_size``, default 1 MiB).

What a reader sees when the file is replaced on the storage during the read (the
contract, checked by :mod:`pylaw.target.remote.contract`): the bytes of the version it
opened, or :class:`~pylaw.errors.RemoteFileChangedError` at the next block it fetches;
never a mixture of two versions. Handles that pin the version (an open file on xrootd,
a local disk, memory) keep serving the old bytes; for the others (HTTP range requests)
the reader compares the file's size and mtime after every block with those at open
(an extra stat per block). A same-size replacement within the mtime's resolution (one
second on most storage) is the one change that check cannot see.

A transient error during a block read reopens the file (with the storage element's
retries and base fallback) if it is still the version opened.
"""

from __future__ import annotations

import io
import os
from typing import IO, TYPE_CHECKING, Any

from pylaw.errors import RemoteFileChangedError, RemoteIsADirectoryError, TransientRemoteError
from pylaw.target.remote.interface import ReadHandle, RemoteStat

if TYPE_CHECKING:
    from pylaw.target.remote.filesystem import RemoteFileSystem

#: bytes fetched per request and kept in the buffer
BLOCK_SIZE = 1 << 20
MODES = ("r", "rt", "rb")


class RemoteReader(io.RawIOBase):
    """The raw, seekable byte stream of one remote file (wrap it in ``io.BufferedReader``)."""

    def __init__(self, fs: RemoteFileSystem, path: str, block_size: int = BLOCK_SIZE) -> None:
        super().__init__()
        self.fs, self.path, self.block_size = fs, fs.normpath(path), block_size
        self.handle, self.info = self._open()
        self.position = 0

    def _open(self) -> tuple[ReadHandle, RemoteStat]:
        timeout = self.fs.retry.timeout
        handle = self.fs.run("get", self.path, lambda base: self.fs.interface.open_read(
            self.fs.url(self.path, base=base), timeout))
        try:
            info = self.fs.stat(self.path)
            if info.is_dir:
                raise RemoteIsADirectoryError(f"cannot read {self.path!r} on {self.fs.name!r}: it is a directory",
                                              operation="open", url=self.fs.url(self.path))
        except BaseException:
            handle.close()
            raise
        return handle, info

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.position, os.SEEK_END: self.info.size}[whence]
        if base + offset < 0:
            raise ValueError(f"cannot seek to {base + offset} in {self.path!r}: before the start")
        self.position = base + offset
        return self.position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._pread(self.position, len(view))
        view[:len(data)] = data
        self.position += len(data)
        return len(data)

    def readall(self) -> bytes:
        """The rest of the file in requests of ``block_size`` (RawIOBase's default asks 8 KiB at a time)."""
        chunks = []
        while chunk := self._pread(self.position, self.block_size):
            chunks.append(chunk)
            self.position += len(chunk)
        return b"".join(chunks)

    def _pread(self, offset: int, length: int) -> bytes:
        """Bytes of the opened version; a transient error reopens it, up to the policy's attempts."""
        for attempt in range(1, self.fs.retry.attempts + 1):
            try:
                data = self.handle.pread(offset, length)
                if not self.handle.pins_version:
                    self._check_unchanged()
                return data
            except RemoteFileChangedError:
                raise
            except TransientRemoteError:
                if attempt == self.fs.retry.attempts:
                    raise
                self.handle.close()
                handle, info = self._open()
                self.handle = handle
                if info != self.info:
                    raise self._changed() from None
        raise AssertionError("unreachable")

    def _check_unchanged(self) -> None:
        if self.fs.stat(self.path) != self.info:
            raise self._changed()

    def _changed(self) -> RemoteFileChangedError:
        return RemoteFileChangedError(
            f"{self.path!r} on {self.fs.name!r} was replaced while it was read (at byte {self.position}); open it "
            "again to read the new version", operation="read", url=self.fs.url(self.path))

    def close(self) -> None:
        if not self.closed:
            self.handle.close()
        super().close()


def open_stream(fs: RemoteFileSystem, path: str, mode: str = "r", block_size: int = BLOCK_SIZE,
                **kwargs: Any) -> IO:
    """A file object reading ``path`` on ``fs`` in blocks; text (``r``) or binary (``rb``).

    ``kwargs`` are those of ``open()`` for text (``encoding``, ``errors``, ``newline``).
    """
    if mode not in MODES:
        raise ValueError(f"streaming reads open with {', '.join(MODES)}, not {mode!r}")
    if block_size < 1:
        raise ValueError(f"block_size must be positive, not {block_size}")
    binary = io.BufferedReader(RemoteReader(fs, path, block_size), buffer_size=block_size)
    if "b" in mode:
        if kwargs:
            raise ValueError(f"binary mode takes no {sorted(kwargs)}")
        return binary
    return io.TextIOWrapper(binary, **kwargs)
