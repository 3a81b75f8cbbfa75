"""Collections of targets: the output of a workflow, checked in bulk.

Existence is decided with one directory listing per directory (for targets that support
it) instead of one ``stat`` per target: 20k outputs in one directory cost one
``scandir``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import luigi.target

from pylaw.target.base import DirectoryTarget, FileSystemTarget


def iter_leaves(struct: Any) -> Iterator[luigi.target.Target]:
    """Every target inside a nested dict/list/tuple/collection structure."""
    if isinstance(struct, TargetCollection):
        for value in struct.targets.values():
            yield from iter_leaves(value)
    elif isinstance(struct, Mapping):
        for value in struct.values():
            yield from iter_leaves(value)
    elif isinstance(struct, (list, tuple)):
        for value in struct:
            yield from iter_leaves(value)
    elif struct is not None:
        yield struct


def structure_exists(struct: Any) -> bool | None:
    """Whether every target in an output structure exists; None if it holds no target.

    Collections are checked as a whole (:meth:`TargetCollection.exists`: one listing per
    directory, and their threshold), the other targets one by one.
    """
    if struct is None:
        return None
    if isinstance(struct, TargetCollection):
        return struct.exists()
    if isinstance(struct, Mapping):
        parts = list(struct.values())
    elif isinstance(struct, (list, tuple)):
        parts = list(struct)
    else:
        return bool(struct.exists())
    verdicts = [v for v in map(structure_exists, parts) if v is not None]
    return all(verdicts) if verdicts else None


def existing_leaves(leaves: Sequence[luigi.target.Target]) -> list[bool]:
    """Whether each target exists, listing every directory once where targets allow it."""
    keys = [leaf.sibling_listing_key() if isinstance(leaf, FileSystemTarget) else None for leaf in leaves]
    representatives: dict[Any, FileSystemTarget] = {}
    for key, leaf in zip(keys, leaves, strict=True):
        if key is not None and key not in representatives:
            representatives[key] = leaf  # type: ignore[assignment]
    listings = list_directories(representatives)
    return [leaf.exists() if key is None else leaf.exists_in_listing(listings[key])  # type: ignore[attr-defined]
            for key, leaf in zip(keys, leaves, strict=True)]


def list_directories(representatives: dict[Any, FileSystemTarget]) -> dict[Any, set[str]]:
    """The listing behind each key, from one target living there.

    A target class may provide ``list_parents_of(targets) -> list[set[str]]`` to list many
    directories at once (remote targets do it in parallel: each listing is a round trip).
    """
    by_class: dict[type, list[Any]] = {}
    for key, leaf in representatives.items():
        by_class.setdefault(type(leaf), []).append(key)
    listings: dict[Any, set[str]] = {}
    for cls, keys in by_class.items():
        many = getattr(cls, "list_parents_of", None)
        targets = [representatives[key] for key in keys]
        names = many(targets) if many is not None else [target.list_parent_names() for target in targets]
        listings.update(zip(keys, names, strict=True))
    return listings


class TargetCollection(luigi.target.Target):
    """A dict (or list) of targets or nested structures of targets, one per element.

    An element exists when all its targets exist. ``threshold`` is the fraction (float) or
    number (int) of elements that must exist for the collection to exist.

    It reads like the container it is: ``len()``, ``collection[branch]``, ``keys()``,
    ``values()``, ``items()``, ``branch in collection``, and iteration yields the elements
    (the targets, in key order, as a ``pandas.Series`` does), so ``for target in
    self.input()`` reads every branch output of a required workflow. ``luigi.task.flatten()``
    therefore sees the individual targets; :meth:`pylaw.Task.complete` still checks a
    collection as a whole (one listing per directory, its threshold).
    """

    def __init__(self, targets: Mapping | Sequence, threshold: float | int = 1.0) -> None:
        self.targets: dict[Any, Any] = dict(targets) if isinstance(targets, Mapping) else dict(enumerate(targets))
        self.threshold = threshold

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} elements)"

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, key: Any) -> Any:
        return self.targets[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.targets.values())

    def __contains__(self, key: object) -> bool:
        return key in self.targets

    def keys(self) -> Any:
        return self.targets.keys()

    def values(self) -> Any:
        return self.targets.values()

    def items(self) -> Any:
        return self.targets.items()

    def required_count(self, threshold: float | int | None = None) -> int:
        """How many elements must exist under ``threshold`` (default: the collection's)."""
        threshold = self.threshold if threshold is None else threshold
        if isinstance(threshold, float):
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"a fractional threshold must lie in [0, 1], not {threshold}")
            return math.ceil(threshold * len(self) - 1e-9)
        return min(int(threshold), len(self))

    def existence(self) -> dict[Any, bool]:
        """Per element, whether all of its targets exist."""
        keys, owners, leaves = list(self.targets), [], []
        for index, key in enumerate(keys):
            for leaf in iter_leaves(self.targets[key]):
                owners.append(index)
                leaves.append(leaf)
        exists = [True] * len(keys)
        for index, flag in zip(owners, existing_leaves(leaves), strict=True):
            if not flag:
                exists[index] = False
        return dict(zip(keys, exists, strict=True))

    def count(self) -> int:
        """Number of existing elements."""
        return sum(self.existence().values())

    def missing(self) -> list[Any]:
        """Keys of the elements that do not (fully) exist."""
        return [key for key, flag in self.existence().items() if not flag]

    def exists(self, threshold: float | int | None = None) -> bool:
        """Whether enough leaves exist: ``threshold`` (a fraction or a count) or the collection's own."""
        return self.count() >= self.required_count(threshold)

    def remove(self) -> int:
        """Remove every existing target; returns how many were removed."""
        return sum(bool(leaf.remove()) for leaf in iter_leaves(self) if hasattr(leaf, "remove"))


class SiblingFileCollection(TargetCollection):
    """A collection of files that all live in one directory (checked with one listing)."""

    def __init__(self, targets: Mapping | Sequence, threshold: float | int = 1.0) -> None:
        super().__init__(targets, threshold)
        leaves = [leaf for leaf in iter_leaves(self) if isinstance(leaf, FileSystemTarget)]
        parents = {leaf.parent.path for leaf in leaves}
        if len(parents) > 1:
            raise ValueError(f"SiblingFileCollection needs files in one directory, got {len(parents)}: "
                             f"{sorted(parents)[:3]}...; use TargetCollection instead")
        self.dir: DirectoryTarget | None = leaves[0].parent if leaves else None


class PendingCollection(TargetCollection):
    """The output of a workflow whose branch map cannot be built yet: no elements, never existing.

    ``waiting_for`` lists the incomplete tasks whose outputs the map is built from (see
    :meth:`pylaw.BaseWorkflow.branch_map_requires`); status shows "waiting for" them.
    """

    def __init__(self, waiting_for: Sequence[Any]) -> None:
        super().__init__({})
        self.waiting_for = list(waiting_for)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(waiting for {len(self.waiting_for)} tasks)"

    def exists(self, threshold: float | int | None = None) -> bool:
        """Never: the branches it will hold are not known yet."""
        return False  # an empty collection would "exist"; the branches are not even known
