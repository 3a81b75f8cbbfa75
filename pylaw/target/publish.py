"""The one local "publish atomically" implementation: write under a temporary sibling, rename on success.

Every local write path of pylaw that must never show a partial file under its final name
uses these: file targets (``open("w")``, ``localize("w")``), downloads from storage
elements, the remote cache's records, job files and config copies, code bundles,
``pylaw init``, ``--fetch-output``. The temporary file is a hidden sibling
(:func:`temporary_sibling`: same directory, so the final ``os.replace`` is atomic on
POSIX, and a name that :func:`pylaw.target.base.temporary_name` marks as pylaw's); on any
failure it is removed and the final name keeps its old content.

No fsync: the rename guarantees that a crashed *process* never leaves a partial file
(syncing every small output tripled run times); a writer that must survive a power cut
syncs itself before the block ends (:func:`pylaw.job.bundle.write_tarball` does).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from typing import IO, Any

from pylaw.target.base import temporary_name

_UMASK: int | None = None

#: what link(2) says on file systems without hard links (vfat, some FUSE mounts)
_NO_HARD_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK)


def file_mode() -> int:
    """Permissions of a new file under the process umask (mkstemp and some tools give 0600)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def temporary_sibling(path: str) -> str:
    """A hidden temporary name in ``path``'s directory, for staging a write of ``path``."""
    directory, basename = os.path.split(path)
    return os.path.join(directory, temporary_name(basename))


def publish(tmp: str, path: str, mode: int | None = None) -> None:
    """Move the finished ``tmp`` to ``path`` in one step (replacing it); ``mode`` sets its permissions first."""
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


def publish_new(tmp: str, path: str) -> bool:
    """Move ``tmp`` to ``path`` unless something is there (or appears meanwhile); returns whether it did.

    Files are hard-linked (link(2) never replaces; ``tmp`` is left for the caller to
    remove), directories renamed (which fails on a non-empty directory that appeared).
    Where hard links do not exist, a check and a rename remain (a file created in between
    would be replaced).
    """
    try:
        if os.path.isdir(tmp):
            if os.path.lexists(path):
                return False
            os.rename(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno == errno.ENOTEMPTY:
            return False
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(path):
            return False
        os.rename(tmp, path)
    return True


@contextlib.contextmanager
def staged(path: str, mode: int | None = None, make_parents: bool = True) -> Iterator[str]:
    """A temporary sibling of ``path`` to write; published as ``path`` when the block ends without error.

    On an exception (or if the block removed it) nothing is published; the temporary file
    never outlives the block.
    """
    if make_parents:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        publish(tmp, path, mode)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", permissions: int | None = None, **kwargs: Any) -> Iterator[IO]:
    """``open(path, mode)`` for writing, published on a clean exit of the block (see :func:`staged`)."""
    if "w" not in mode:
        raise ValueError(f"atomic_open writes (mode w or wb), not {mode!r}")
    with staged(path, permissions) as tmp, open(tmp, mode.replace("w", "x"), **kwargs) as f:
        yield f
