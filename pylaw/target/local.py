"""Targets on the local file system, with atomic writes.

Writes go to a hidden temporary sibling (same directory, so the final ``os.replace`` is
atomic on POSIX) and are published only when the writer finishes without error: a crash
mid-write never leaves a file under the final name. Directories are staged and guarded
the same way (:mod:`pylaw.target.dirstage`); the task event handlers at the end of this
module put up and lift the guard of a task's directory outputs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

import luigi
import luigi.worker

from pylaw.target import dirstage
from pylaw.target.base import DirectoryTarget, FileSystemTarget, FileTarget
from pylaw.target.publish import file_mode, publish, staged, temporary_sibling

logger = logging.getLogger("pylaw.target")

class AtomicFile:
    """A file opened for writing under a temporary name, renamed into place on success.

    ``close()`` (or leaving a ``with`` block normally) publishes it; leaving the block with
    an exception, or ``discard()``, deletes the temporary file.
    """

    def __init__(self, path: str, mode: str, **kwargs: Any) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.target_path = path
        self.tmp_path = temporary_sibling(path)
        self._file: IO = self._open(self.tmp_path, mode.replace("w", "x"), **kwargs)
        self.closed = False

    def _open(self, path: str, mode: str, **kwargs: Any) -> IO:
        """Open the temporary file (subclasses may wrap it, e.g. to checksum what is written)."""
        return open(path, mode, **kwargs)

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
        """Publish the file under its final name (:func:`pylaw.target.publish.publish`)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._file.close()
            publish(self.tmp_path, self.target_path, file_mode())
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
        """Whether the file is there: one ``stat`` call."""
        return os.path.exists(self.path)

    def sibling_listing_key(self) -> Hashable:
        # paths are normalised and absolute: the text before the last "/" is the directory
        # (os.path.dirname costs 5x more, and this runs once per output of a collection)
        return ("local", self.path.rpartition("/")[0] or "/")

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
        with staged(self.path, file_mode()) as path:
            tmp = LocalFileTarget.from_normalized(path)
            yield tmp
            if not tmp.exists():
                raise FileNotFoundError(f"the localized file {tmp.path} for {self.path} was never written")

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
    """A local directory, published atomically by :meth:`localize` and guarded while its task runs.

    It exists when the directory is there and no task writing it is unfinished (see
    :mod:`pylaw.target.dirstage`): a half-written directory never looks complete.
    """

    def exists(self) -> bool:
        """Whether the directory is there and complete: no guard marker beside it (a writer runs or died)."""
        return os.path.isdir(self.path) and not os.path.exists(dirstage.marker_path(self.path))

    def exists_in_listing(self, names: set[str]) -> bool:
        name = self.basename
        return name in names and dirstage.marker_name(name) not in names

    def child(self, name: str, type: str = "f") -> FileSystemTarget:
        path = os.path.normpath(os.path.join(self.path, name))
        if type not in ("f", "d"):
            raise ValueError(f"child type must be 'f' or 'd', not {type!r}")
        return (LocalFileTarget if type == "f" else LocalDirectoryTarget).from_normalized(path)

    def listdir(self) -> list[str]:
        return sorted(os.listdir(self.path))

    def touch(self) -> None:
        os.makedirs(self.path, exist_ok=True)

    @contextmanager
    def localize(self, mode: str = "r") -> Iterator[LocalDirectoryTarget]:
        """Reading yields this target; writing yields an empty temporary directory, put in place on success.

        The new version replaces the old one in one step (readers never see a mixture);
        on an exception the old version is left as it was.
        """
        if mode == "r":
            yield self
            return
        if mode != "w":
            raise ValueError(f"localize() mode must be 'r' or 'w', not {mode!r}")
        staged = dirstage.StagedDirectory(self.path)
        try:
            yield LocalDirectoryTarget.from_normalized(staged.path)
        except BaseException:
            staged.discard()
            raise
        staged.publish()

    def remove(self, silent: bool = True) -> bool:
        """Remove the tree: renamed aside first, so it vanishes at once, then deleted."""
        old = dirstage.move_aside(self.path) if os.path.isdir(self.path) else None
        if old is None:
            if not silent:
                raise FileNotFoundError(self.path)
            return False
        dirstage.remove_tree(old)
        dirstage.clean_leftovers(self.path)
        return True

    def clean_leftovers(self) -> int:
        """Remove what killed writes of this directory left behind; returns how many entries.

        Done after every successful write and removal anyway; only entries whose writer is
        gone are touched.
        """
        return dirstage.clean_leftovers(self.path)

    def copy_to(self, destination: str) -> LocalDirectoryTarget:
        """Copy the whole tree to a local path, replacing what is there, atomically."""
        copy = LocalDirectoryTarget(destination)
        with copy.localize("w") as tmp:
            shutil.copytree(self.path, tmp.path, dirs_exist_ok=True)
        return copy


def _directory_outputs(struct: Any) -> Iterator[LocalDirectoryTarget]:
    """The local directories of an output structure (dicts, lists, tuples of targets).

    Collections are left out: they hold the outputs of other tasks (a workflow's are its
    branches'), which those tasks guard themselves.
    """
    if isinstance(struct, LocalDirectoryTarget):
        yield struct
    elif isinstance(struct, Mapping):
        for value in struct.values():
            yield from _directory_outputs(value)
    elif isinstance(struct, (list, tuple)):
        for value in struct:
            yield from _directory_outputs(value)


def _guarded_directories(task: Any) -> list[str]:
    """Paths of the task's local directory outputs, leaving out those inside another one."""
    paths = sorted({target.path for target in _directory_outputs(task.output())})
    return [p for i, p in enumerate(paths) if not any(p.startswith(q + "/") for q in paths[:i])]


# The guards of running tasks, by id(task), with the task itself (so its id stays unique).
# Kept out of the task's __dict__, which branch views copy.
_GUARDS: dict[int, tuple[Any, list[dirstage.WriteGuard]]] = {}


def begin_directory_outputs(task: Any) -> None:
    """Luigi START handler of pylaw tasks: guard the task's local directory outputs while it runs."""
    if id(task) in _GUARDS:
        return  # run() resumed after dynamic dependencies: the guards are still up
    paths = _guarded_directories(task)
    if not paths:
        return
    # the one option read, not the whole [worker] section (parsing it costs 1 ms per task)
    if luigi.worker.worker.check_complete_on_run.task_value("worker", "check_complete_on_run"):
        _warn_unguarded()
        return
    guards: list[dirstage.WriteGuard] = []
    _GUARDS[id(task)] = (task, guards)
    for path in paths:
        guard = dirstage.WriteGuard(path)
        guard.begin()
        guards.append(guard)


def finish_directory_outputs(task: Any) -> None:
    """Luigi SUCCESS handler (and LocalWorkflow's, before it checks outputs): the outputs are complete."""
    for guard in _GUARDS.pop(id(task), (None, ()))[1]:
        guard.finish()


def abandon_directory_outputs(task: Any, exc: BaseException | None = None) -> None:
    """Luigi FAILURE handler: the directories keep their markers, so they stay missing."""
    for guard in _GUARDS.pop(id(task), (None, ()))[1]:
        guard.abandon()


def written_by(target: Any, task: Any) -> bool:
    """Whether the running ``task`` has written ``target``: its own guard does not make it missing."""
    if isinstance(target, LocalDirectoryTarget) and id(task) in _GUARDS:
        return os.path.isdir(target.path)
    return bool(target.exists())


def guard_directory_outputs(task_class: type[luigi.Task]) -> None:
    """Guard the directory outputs of ``task_class`` and its subclasses (pylaw.Task does it for all)."""
    task_class.event_handler(luigi.Event.START)(begin_directory_outputs)
    task_class.event_handler(luigi.Event.SUCCESS)(finish_directory_outputs)
    task_class.event_handler(luigi.Event.FAILURE)(abandon_directory_outputs)


@functools.cache
def _warn_unguarded() -> None:
    logger.warning("[worker] check_complete_on_run is set: Luigi checks outputs before its SUCCESS event, "
                   "where pylaw lifts the guard of directory outputs, so directories written in place are "
                   "not guarded; write them with localize('w') to keep them atomic")
