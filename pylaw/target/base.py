"""The target API shared by local and remote targets.

A target names one file or directory. Subclasses implement a handful of primitives
(``exists``, ``remove``, ``open``, ``parent``, ``list_parent_names``, ...); loading,
dumping and batched existence checks are built on them here, so every storage behaves
the same way in a task.
"""

from __future__ import annotations

import abc
import secrets
from collections.abc import Hashable
from contextlib import AbstractContextManager
from typing import IO, Any

import luigi.target

from pylaw.errors import UnreadableFileError
from pylaw.target.formatter import find_formatter

TMP_PREFIX = ".pylaw-tmp-"


def temporary_name(basename: str) -> str:
    """A hidden sibling name for an atomic write; it keeps the extension for tools that need it."""
    return f"{TMP_PREFIX}{secrets.token_hex(4)}-{basename}"


class FileSystemTarget(luigi.target.Target, abc.ABC):
    """A file or directory on some file system, addressed by ``path``."""

    path: str

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.path == self.path  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.path))

    @property
    def basename(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    @abc.abstractmethod
    def parent(self) -> DirectoryTarget:
        """The directory that contains this target."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether the file or directory is there."""

    @abc.abstractmethod
    def remove(self, silent: bool = True) -> bool:
        """Delete the target (directories recursively); returns whether something was removed."""

    def sibling_listing_key(self) -> Hashable | None:
        """Key of the directory listing that answers ``exists()``; None if listing is unsupported.

        Collections group their targets by this key and list each directory once
        instead of checking every target on its own.
        """
        return None

    def list_parent_names(self) -> set[str]:
        """Names in the parent directory (empty if it does not exist)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its parent directory")

    def exists_in_listing(self, names: set[str]) -> bool:
        """``exists()``, answered from the names listed in the parent directory."""
        return self.basename in names


class FileTarget(FileSystemTarget):
    """A file: open, load/dump through formatters, localize."""

    @abc.abstractmethod
    def open(self, mode: str = "r", **kwargs: Any) -> IO:
        """Open for reading, or for an atomic write (``w``/``wb``): published on successful close."""

    @abc.abstractmethod
    def localize(self, mode: str = "r") -> AbstractContextManager[FileTarget]:
        """A local file to read (``r``) or to write (``w``), moved into place on success."""

    @abc.abstractmethod
    def touch(self) -> None:
        """Create an empty file if missing (parents included) or update its mtime."""

    def load(self, formatter: str | None = None, **kwargs: Any) -> Any:
        """Read the content through the formatter for this file's extension."""
        fmt = find_formatter(self.path, formatter)
        with self.open("rb" if fmt.binary else "r") as f:
            try:
                return fmt.load(f, **kwargs)
            except (OSError, MemoryError):
                raise
            except Exception as exc:  # json, pickle, numpy, yaml each raise their own kind
                raise UnreadableFileError(f"cannot read {self.path} as {fmt.name}: {type(exc).__name__}: {exc} "
                                          f"(remove it, or its task's outputs, to have it made again)") from exc

    def dump(self, obj: Any, formatter: str | None = None, **kwargs: Any) -> None:
        """Write ``obj`` atomically through the formatter for this file's extension."""
        fmt = find_formatter(self.path, formatter)
        with self.open("wb" if fmt.binary else "w") as f:
            fmt.dump(f, obj, **kwargs)


class DirectoryTarget(FileSystemTarget):
    """A directory: children, listing, creation."""

    @abc.abstractmethod
    def child(self, name: str, type: str = "f") -> FileSystemTarget:
        """The file (``type="f"``) or directory (``"d"``) called ``name`` inside this one."""

    @abc.abstractmethod
    def listdir(self) -> list[str]: ...

    @abc.abstractmethod
    def touch(self) -> None:
        """Create the directory and its parents if missing."""
