"""Targets on the local file system, with atomic writes.

Writes go to a hidden temporary sibling (same directory, so the final ``os.replace`` is
atomic on POSIX) and are published only when the writer finishes without error: a crash
mid-write never leaves a file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from pylaw.target.base import DirectoryTarget, FileSystemTarget, FileTarget, temporary_name

_UMASK: int | None = None


def _file_mode() -> int:
    """Permissions of a new file under the process umask (mkstemp would give 0600)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


class AtomicFile:
    """A file opened for writing under a temporary name, renamed into place on success.

    ``close()`` (or leaving a ``with`` block normally) publishes it; leaving the block with
    an exception, or ``discard()``, deletes the temporary file.
    """

    def __init__(self, path: str, mode: str, **kwargs: Any) -> None:
        directory, basename = os.path.split(path)
        os.makedirs(directory, exist_ok=True)
        self.target_path = path
        self.tmp_path = os.path.join(directory, temporary_name(basename))
        self._file: IO = open(self.tmp_path, mode.replace("w", "x"), **kwargs)  # noqa: SIM115
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        if name == "_file":  # not opened (yet): avoid recursing
            raise AttributeError(name)
        return getattr(self._file, name)

    def write(self, data: Any) -> int:
        return self._file.write(data)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def close(self) -> None:
        """Publish the file under its final name.

        No fsync: the rename already guarantees that a crashed *process* never leaves a
        partial file under the final name; syncing every small output tripled run times.
        """
        if self.closed:
            return
        self.closed = True
        try:
            self._file.close()
            os.chmod(self.tmp_path, _file_mode())
            os.replace(self.tmp_path, self.target_path)
        except BaseException:
            self._remove_tmp()
            raise

    def discard(self) -> None:
        """Drop what was written; the final name is left untouched."""
        if not self.closed:
            self.closed = True
            self._file.close()
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.tmp_path)


class LocalTargetMixin:
    """Path handling shared by local files and directories."""

    path: str

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(os.path.expanduser(os.fspath(path)))

    @classmethod
    def from_normalized(cls, path: str) -> Any:
        """Build from a path that is already absolute and normalised (hot path of workflows)."""
        target = cls.__new__(cls)
        target.path = path
        return target

    @property
    def parent(self) -> LocalDirectoryTarget:
        return LocalDirectoryTarget.from_normalized(os.path.dirname(self.path))

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def sibling_listing_key(self) -> Hashable:
        return ("local", os.path.dirname(self.path))

    def list_parent_names(self) -> set[str]:
        try:
            with os.scandir(os.path.dirname(self.path)) as entries:
                return {entry.name for entry in entries}
        except (FileNotFoundError, NotADirectoryError):
            return set()

    def stat(self) -> os.stat_result:
        return os.stat(self.path)


class LocalFileTarget(LocalTargetMixin, FileTarget):
    """A local file."""

    def open(self, mode: str = "r", **kwargs: Any) -> IO:
        if "w" in mode:
            return AtomicFile(self.path, mode, **kwargs)  # type: ignore[return-value]
        if "a" in mode:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        return open(self.path, mode, **kwargs)

    @contextmanager
    def localize(self, mode: str = "r") -> Iterator[LocalFileTarget]:
        """Reading yields this target; writing yields a temporary sibling, renamed on success."""
        if mode == "r":
            yield self
            return
        if mode != "w":
            raise ValueError(f"localize() mode must be 'r' or 'w', not {mode!r}")
        directory = os.path.dirname(self.path)
        os.makedirs(directory, exist_ok=True)
        tmp = LocalFileTarget.from_normalized(os.path.join(directory, temporary_name(self.basename)))
        try:
            yield tmp
            if not tmp.exists():
                raise FileNotFoundError(f"the localized file {tmp.path} for {self.path} was never written")
            os.chmod(tmp.path, _file_mode())
            os.replace(tmp.path, self.path)
        finally:
            tmp.remove()

    def touch(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "a"):
            os.utime(self.path)

    def remove(self, silent: bool = True) -> bool:
        try:
            os.remove(self.path)
        except FileNotFoundError:
            if not silent:
                raise
            return False
        return True

    def copy_to(self, destination: str) -> LocalFileTarget:
        """Copy to a local path (a directory keeps the basename), atomically."""
        if os.path.isdir(destination):
            destination = os.path.join(destination, self.basename)
        copy = LocalFileTarget(destination)
        with copy.localize("w") as tmp:
            shutil.copy2(self.path, tmp.path)
        return copy


class LocalDirectoryTarget(LocalTargetMixin, DirectoryTarget):
    """A local directory."""

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def child(self, name: str, type: str = "f") -> FileSystemTarget:
        path = os.path.normpath(os.path.join(self.path, name))
        if type not in ("f", "d"):
            raise ValueError(f"child type must be 'f' or 'd', not {type!r}")
        return (LocalFileTarget if type == "f" else LocalDirectoryTarget).from_normalized(path)

    def listdir(self) -> list[str]:
        return sorted(os.listdir(self.path))

    def touch(self) -> None:
        os.makedirs(self.path, exist_ok=True)

    def remove(self, silent: bool = True) -> bool:
        if not os.path.isdir(self.path):
            if not silent:
                raise FileNotFoundError(self.path)
            return False
        shutil.rmtree(self.path)
        return True

    def copy_to(self, destination: str) -> LocalDirectoryTarget:
        """Copy the whole tree to a local path."""
        shutil.copytree(self.path, destination, dirs_exist_ok=True)
        return LocalDirectoryTarget(destination)
