"""Directory outputs that never look complete half-written.

A file is published in one atomic ``rename``; a directory is many files, so pylaw offers:

* **staging** (:class:`StagedDirectory`, behind ``LocalDirectoryTarget.localize("w")``):
  the new version is written under a temporary name and renamed into place when
  complete. Readers see the old version or the new one, nothing in between.
* **the guard** (:class:`WriteGuard`): while a task that outputs a local directory runs,
  a marker file says the directory is being written, and ``exists()`` is False while the
  marker is there. Code that writes straight into the final path is covered too: a task
  killed at any point (SIGKILL included) leaves the marker behind, so its partial
  directory is "missing", and the next run removes it before starting again.

Next to a directory ``<parent>/<name>`` pylaw keeps two hidden names (the letters keep
them apart from each other and from the ``.pylaw-tmp-<random>-<name>`` of file writes):

* ``.pylaw-tmp-w-<name>``: the guard's marker, held with a shared ``flock`` by every
  running writer; a collection's listing of the parent sees it without any extra call;
* ``.pylaw-tmp-d-<name>/``: the *holder* of directories being staged (each held with a
  shared ``flock`` by its writer) and of old versions on their way to deletion (held by
  nobody). The leftovers of one target are found by listing this small, normally absent
  directory, never the parent with its thousands of outputs.

Locks tell the leftovers of dead processes from work in progress: the kernel drops a
process's locks when it dies, however it dies. Whoever can take an exclusive lock on an
entry knows its writer is gone and removes it (a clean-up runs after every successful
write and removal of the target). Where the file system cannot lock (some network file
systems), nothing is removed by clean-ups, and a marker found by a new run is taken
for the leftover of a dead one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import secrets
import shutil
from collections.abc import Callable

from pylaw.errors import PylawError
from pylaw.target.base import TMP_PREFIX

logger = logging.getLogger("pylaw.target")

# creations are retried when a concurrent clean-up removes the holder in between
_ATTEMPTS = 50


def holder_path(path: str) -> str:
    """The hidden sibling that keeps the staged and old versions of directory ``path``."""
    directory, name = os.path.split(path)
    return f"{directory}/{TMP_PREFIX}d-{name}"


def marker_name(name: str) -> str:
    """The name of the guard's marker next to a directory called ``name``."""
    return f"{TMP_PREFIX}w-{name}"


def marker_path(path: str) -> str:
    """The guard's marker of directory ``path``: present while a task writing it runs."""
    directory, name = os.path.split(path)
    return f"{directory}/{TMP_PREFIX}w-{name}"


def _lock(fd: int, operation: int) -> bool | None:
    """``flock``: True when taken, False when another process holds it, None if the file system cannot lock."""
    try:
        fcntl.flock(fd, operation)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def _is_at(fd: int, path: str) -> bool:
    """Whether ``path`` still names the open file ``fd`` (not removed or replaced meanwhile)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def remove_tree(path: str) -> None:
    """Delete a file or a tree; parts removed meanwhile by a concurrent clean-up are fine."""
    if not os.path.isdir(path) or os.path.islink(path):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        return
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):  # not a race: let the real error (permissions, ...) surface
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)


def _new_entry(final: str, create: Callable[[str], None]) -> str:
    """Create a fresh random entry in the holder of ``final`` (making the holder as needed)."""
    holder = holder_path(final)
    for _ in range(_ATTEMPTS):
        os.makedirs(holder, exist_ok=True)
        path = os.path.join(holder, secrets.token_hex(8))
        try:
            create(path)
        except FileNotFoundError:  # a clean-up removed the empty holder meanwhile
            continue
        return path
    raise PylawError(f"could not create a temporary entry in {holder}: it keeps disappearing")


def move_aside(final: str) -> str | None:
    """Rename ``final`` into its holder (to be deleted there); None if it does not exist."""
    for _ in range(_ATTEMPTS):
        if not os.path.lexists(final):
            return None
        old = _new_entry(final, lambda path: None)
        try:
            os.rename(final, old)
        except FileNotFoundError:  # final removed, or the empty holder cleaned away, meanwhile
            continue
        return old
    raise PylawError(f"could not move {final} aside: it keeps disappearing")


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Callable[..., int] | bool | None = False  # False: not looked up yet


def exchange(a: str, b: str) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``).

    False where the C library or the file system has no such call; FileNotFoundError
    if one of the paths is gone.
    """
    global _renameat2
    if _renameat2 is False:
        function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
        if function is not None:
            function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        _renameat2 = function
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:  # type: ignore
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), b)


def publish(staged: str, final: str) -> None:
    """Move the directory ``staged`` to ``final``, replacing any old version.

    ``rename(2)`` cannot replace a non-empty directory (ENOTEMPTY). The old version is
    swapped out in one step where Linux allows it; elsewhere it is first moved aside, so
    ``final`` is briefly missing, but never partial.
    """
    old_versions = []
    try:
        for _ in range(_ATTEMPTS):
            try:
                os.rename(staged, final)
                return
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            try:
                if exchange(staged, final):
                    old_versions.append(staged)  # the swap left the old version at the staged path
                    return
            except FileNotFoundError:  # removed meanwhile: a plain rename will do
                continue
            old = move_aside(final)
            if old is not None:
                old_versions.append(old)
        raise PylawError(f"could not move {staged} to {final}: other processes keep writing it")
    finally:
        for old in old_versions:
            remove_tree(old)


def clean_leftovers(final: str, marker: bool = True) -> int:
    """Remove what dead writers left of ``final``; returns how many entries.

    An entry is removed only when an exclusive lock on it can be taken: its writer is
    gone. The marker of a dead guard goes too (a successful write supersedes it) unless
    ``marker`` is False. The holder itself is removed when empty.
    """
    removed = 0
    holder = holder_path(final)
    try:
        names = os.listdir(holder)
    except (FileNotFoundError, NotADirectoryError):
        names = None
    for name in names or ():
        removed += _remove_if_dead(os.path.join(holder, name), os.O_RDONLY)
    if names is not None:
        with contextlib.suppress(OSError):  # ENOTEMPTY while others write
            os.rmdir(holder)
    return removed + (_remove_if_dead(marker_path(final), os.O_RDWR) if marker else 0)


def _remove_if_dead(path: str, flags: int) -> int:
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return 0
    try:
        # removed while still locked: see StagedDirectory and WriteGuard.begin
        if _lock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB):
            remove_tree(path)
            return 1
        return 0
    finally:
        os.close(fd)


class StagedDirectory:
    """A new version of a directory, written under a temporary name, published on success."""

    def __init__(self, final: str) -> None:
        self.final = final
        for _ in range(_ATTEMPTS):
            path = _new_entry(final, os.mkdir)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                continue
            # A clean-up may have taken the fresh, not yet locked directory for a leftover:
            # it removes entries while holding their lock, so once our lock is granted the
            # path either is still ours or is gone.
            _lock(fd, fcntl.LOCK_SH)
            if _is_at(fd, path):
                self.path, self._fd = path, fd
                return
            os.close(fd)
        raise PylawError(f"could not create a temporary directory for {final}")

    def publish(self) -> None:
        """Move the staged directory into place (replacing the old version), then clean up."""
        try:
            if not _is_at(self._fd, self.path):
                raise FileNotFoundError(f"the localized directory {self.path} for {self.final} was removed or "
                                        "replaced: write into it instead of re-creating it")
            publish(self.path, self.final)
        except BaseException:
            self.discard()
            raise
        os.close(self._fd)
        clean_leftovers(self.final)

    def discard(self) -> None:
        """Drop the staged directory; the final path is left as it was."""
        if _is_at(self._fd, self.path):
            remove_tree(self.path)
        os.close(self._fd)
        clean_leftovers(self.final)


class WriteGuard:
    """The marker that keeps a directory "missing" while a task that writes it runs.

    ``begin()`` before the task runs, ``finish()`` when it succeeded, ``abandon()`` when
    it failed (the marker stays: what was written is not trusted). Concurrent writers
    share the marker; the last one to finish removes it.
    """

    def __init__(self, final: str) -> None:
        self.final = final
        self.marker = marker_path(final)
        self._fd: int | None = None
        self._locking = True

    def begin(self) -> None:
        """Put up the marker; remove the partial directory of a dead earlier run first."""
        for _ in range(_ATTEMPTS):
            parent = os.path.dirname(self.marker)
            if not os.path.isdir(parent):
                os.makedirs(parent, exist_ok=True)  # the store directory, as for files
            try:
                fd = os.open(self.marker, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
                created = True
            except FileExistsError:
                try:
                    fd = os.open(self.marker, os.O_RDWR)
                except FileNotFoundError:
                    continue
                created = False
            except FileNotFoundError:  # the parent was removed meanwhile
                continue
            alone: bool | None = True
            if created:
                held = _lock(fd, fcntl.LOCK_SH)
            else:
                alone = _lock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if alone is not False and _is_at(fd, self.marker):
                    # nobody alive holds it: the marker of a dead run, whose output is partial
                    self._remove_partial()
                held = _lock(fd, fcntl.LOCK_SH)  # joins, or turns the exclusive lock into a shared one
            # the marker may have been removed meanwhile (by the last writer of a previous round,
            # or by a clean-up in the instant of turning the lock around): start again
            if not _is_at(fd, self.marker):
                os.close(fd)
                continue
            self._fd, self._locking = fd, held is not None
            if alone is False:
                logger.warning("%s is being written by another process at the same time", self.final)
            return
        raise PylawError(f"could not put up the write marker {self.marker}")

    def _remove_partial(self) -> None:
        old = move_aside(self.final)
        if old is not None:
            logger.info("removing %s: the partial output of an interrupted run", self.final)
            remove_tree(old)
        clean_leftovers(self.final)

    def finish(self) -> None:
        """The task succeeded: drop this writer's hold; the last writer removes the marker."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            last = _lock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB) if self._locking else None
            if last is not False and _is_at(fd, self.marker):
                os.remove(self.marker)
        finally:
            os.close(fd)
        if last is not False:
            clean_leftovers(self.final, marker=False)

    def abandon(self) -> None:
        """The task failed: release the hold, keep the marker (the directory stays missing)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
