"""The one remote "publish atomically" protocol: temporary name, checks, rename.

Every write to a storage element goes through :class:`StagedUpload`: single uploads
(:meth:`~pylaw.target.remote.filesystem.RemoteFileSystem.put`, ``open("w")``, ``localize("w")``), batch uploads
(:class:`pylaw.target.remote.transfer.PutRound`, which runs the same steps for many
files at once and checks sizes by directory listings) and copies within a storage
element. The steps:

1. :meth:`~StagedUpload.send`: copy the data to a hidden temporary name in the
   destination's directory (a fresh name per attempt: a server may still hold the last
   one open);
2. :meth:`~StagedUpload.check_size` and :meth:`~StagedUpload.check_checksum`: the
   temporary file has the size, and where the storage reports one the checksum, of the
   source; a mismatch leaves nothing under the final name;
3. :meth:`~StagedUpload.publish`: rename it to the final name, coping with a rename whose
   answer was lost (retried, it finds no source) and with servers that refuse to replace;
4. :meth:`~StagedUpload.discard`: remove the temporary names left by failed attempts (or
   all of them when the upload failed).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable
from typing import TYPE_CHECKING

from pylaw.errors import RemoteError, RemoteFileExistsError, RemoteFileNotFoundError, TransientRemoteError
from pylaw.target.base import temporary_name
from pylaw.target.remote.interface import RemoteStat

if TYPE_CHECKING:
    from pylaw.target.remote.filesystem import Digest, RemoteFileSystem

logger = logging.getLogger(__name__)


class StagedUpload:
    """One file on its way to ``path`` on ``fs`` (normalised), of ``size`` bytes and ``digest`` (or None).

    ``what`` names the operation in error messages (``upload of a.txt to '/d/a.txt'``).
    ``fs`` brings the retry policy: a batch passes a single-attempt view, as its rounds retry.
    """

    def __init__(self, fs: RemoteFileSystem, path: str, size: int | None, digest: Digest | None,
                 what: str) -> None:
        self.fs, self.path, self.size, self.digest, self.what = fs, fs.normpath(path), size, digest, what
        self.temporaries: list[str] = []

    @property
    def tmp(self) -> str:
        """The temporary name of the last attempt."""
        return self.temporaries[-1]

    def send(self, source: Callable[[str], str]) -> None:
        """Copy ``source(base)`` (a URL) to a fresh temporary name, with the storage element's retries."""
        directory, basename = posixpath.split(self.path)

        def attempt(base: str) -> None:
            self.temporaries.append(posixpath.join(directory, temporary_name(basename)))
            self.fs.interface.copy(source(base), self.fs.url(self.tmp, base=base), True, self.fs.retry.timeout)

        self.fs.run("put", self.path, attempt)

    def size_error(self, path: str, found: RemoteStat | None) -> TransientRemoteError | None:
        """The error if ``found`` (the stat of ``path``, None if missing) does not have the expected size."""
        if found is not None and found.size == self.size:
            return None
        return TransientRemoteError(f"{self.what} on {self.fs.name!r}: {path!r} has "
                                    f"{found.size if found else 'no'} bytes instead of {self.size}",
                                    operation="put", url=self.fs.url(path, "put"))

    def check_size(self) -> None:
        """The temporary file has the expected size (one stat), else TransientRemoteError."""
        error = self.size_error(self.tmp, self.fs.stat(self.tmp))
        if error is not None:
            raise error

    def check_checksum(self) -> None:
        """RemoteChecksumError if the storage reports another checksum for the temporary file than the source's."""
        if self.digest is not None:
            self.fs._check_checksum(self.tmp, self.digest, self.what, "put")

    def publish(self) -> None:
        """Rename the temporary file to the final name.

        If a rename succeeded on the server but its answer was lost, the retry finds no
        source; the upload is complete when the destination has the expected size.
        """
        fs, tmp = self.fs, self.tmp
        try:
            fs.rename(tmp, self.path)
        except RemoteFileNotFoundError:
            if fs.stat(self.path).size != self.size:
                raise
        except RemoteFileExistsError:
            if not fs.exists(tmp):  # an earlier attempt did rename it; its answer was lost
                if fs.stat(self.path).size != self.size:
                    raise
                return
            # some servers refuse to replace on MOVE: drop the old file, then rename
            fs.unlink(self.path)
            fs.rename(tmp, self.path)

    def discard(self, keep_last: bool = False) -> None:
        """Remove the temporary files (best effort); ``keep_last``: only those of failed attempts."""
        for tmp in self.temporaries[:-1] if keep_last else self.temporaries:
            try:
                self.fs.unlink(tmp)
            except (RemoteError, OSError) as exc:
                if not isinstance(exc, RemoteFileNotFoundError):
                    logger.warning("could not remove the temporary upload %s on %s: %s", tmp, self.fs.name, exc)
