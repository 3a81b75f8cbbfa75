"""Copying outputs into a local directory (``--fetch-output``): mirrored, atomic, never clobbering.

Each output lands below the destination at the path it has where it is stored, so the
outputs of shift variations, of other parameter values and files sharing a basename keep
distinct, recognisable paths:

* a local output below the store root: ``DIR/<Family>/<version>/<params...>/<file>``;
* a remote output: ``DIR/<storage name>/<path on the storage element>``;
* a local output outside the store: ``DIR/_outside_store/<its absolute path>``.

A copy is written under a hidden temporary name (``.pylaw-tmp-...``) next to its
destination and renamed into place when complete, so an interrupted fetch never leaves a
partial file under the final name. An existing destination is never replaced unless
asked (``overwrite``); one with the same content is reported as already there.

The provenance record of each fetched output goes along (:class:`RecordCopier`), into a
``.pylaw-prov`` tree at the root of the destination mirroring it as the store's does, so
``pylaw provenance`` and ``pylaw reproduce`` work on the copy wherever it is taken.
"""

from __future__ import annotations

import filecmp
import json
import logging
import os
import time
from typing import Any

from pylaw import provenance
from pylaw.staleness import StalenessChecker
from pylaw.target import dirstage
from pylaw.target.base import DirectoryTarget, FileSystemTarget
from pylaw.target.local import LocalTargetMixin
from pylaw.target.publish import publish, publish_new, temporary_sibling

#: outcome of :func:`fetch`: copied to a new destination
FETCHED = "fetched"
#: outcome of :func:`fetch`: other content was at the destination and was replaced (``overwrite``)
REPLACED = "replaced"
#: outcome of :func:`fetch`: the same content was at the destination already
ALREADY_THERE = "already there"
#: outcome of :func:`fetch`: other content is at the destination; nothing was changed
REFUSED = "refused"

#: the directory below the destination that mirrors local outputs outside the store
OUTSIDE_STORE = "_outside_store"

logger = logging.getLogger("pylaw.fetch")


def mirrored_path(target: FileSystemTarget, directory: str, store_root: str) -> str:
    """Where ``target`` is fetched to below ``directory`` (see the module docstring)."""
    if isinstance(target, LocalTargetMixin):
        root = store_root.rstrip("/") + "/"
        relative = target.path[len(root):] if target.path.startswith(root) else OUTSIDE_STORE + target.path
    else:
        storage = getattr(target, "fs_name", None)
        if not storage:
            raise TypeError(f"cannot fetch {target!r}: neither a local nor a remote target")
        relative = storage + "/" + target.path.lstrip("/")  # remote paths are normalised: no "..", no "//"
    return os.path.join(os.path.abspath(directory), relative)


def fetch(target: FileSystemTarget, destination: str, overwrite: bool = False) -> str:
    """Copy an existing ``target`` to the local path ``destination``; returns the outcome.

    :data:`FETCHED` (new), :data:`REPLACED` (``overwrite`` and other content was there),
    :data:`ALREADY_THERE` (the same content was there), :data:`REFUSED` (other content
    is there and ``overwrite`` is False: nothing was changed).
    """
    if os.path.lexists(destination) and not overwrite:
        if isinstance(target, LocalTargetMixin):  # compare in place, no copy needed
            return ALREADY_THERE if same_content(target.path, destination) else REFUSED
        if not isinstance(target, DirectoryTarget) and os.path.isfile(destination) \
                and target.stat().size != os.path.getsize(destination):  # type: ignore[attr-defined]
            return REFUSED  # a remote file of another size: no need to download it
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    staged = temporary_sibling(destination)
    try:
        target.copy_to(staged)  # type: ignore[attr-defined]
        if os.path.lexists(destination):
            if same_content(staged, destination):
                return ALREADY_THERE
            if not overwrite:
                return REFUSED
            if os.path.isdir(staged) or os.path.isdir(destination):
                dirstage.publish(staged, destination)  # swapped in one step where Linux allows it
            else:
                publish(staged, destination)
            return REPLACED
        return FETCHED if publish_new(staged, destination) else REFUSED
    finally:
        if os.path.lexists(staged):
            dirstage.remove_tree(staged)


def same_content(a: str, b: str) -> bool:
    """Whether two local files, or two directory trees, hold the same bytes under the same names."""
    if os.path.isdir(a) != os.path.isdir(b):
        return False
    if not os.path.isdir(a):
        return filecmp.cmp(a, b, shallow=False)
    tree_a, tree_b = _tree(a), _tree(b)
    if tree_a != tree_b:
        return False
    return all(is_dir or filecmp.cmp(os.path.join(a, rel), os.path.join(b, rel), shallow=False)
               for rel, is_dir in tree_a.items())


def _tree(root: str) -> dict[str, bool]:
    """``{relative path: is a directory}`` of everything below ``root``."""
    entries: dict[str, bool] = {}
    for directory, subdirs, files in os.walk(root):
        relative = os.path.relpath(directory, root)
        for name in subdirs:
            entries[os.path.normpath(os.path.join(relative, name))] = True
        for name in files:
            entries[os.path.normpath(os.path.join(relative, name))] = False
    return entries


class RecordCopier:
    """Copies the provenance records of fetched outputs into the destination's own record tree.

    The record is the source's, unchanged, plus ``"copy": {"path", "source", "time"}``: the
    fetched file it describes now, where it was copied from, and when. Each source log
    is read once (:class:`~pylaw.staleness.StalenessChecker` keeps them), a copy already
    recorded for the same run is not added again, and the lines of one destination
    directory are appended in one write by :meth:`close`. A record that cannot be copied is
    a warning: the fetched outputs are what was asked for.
    """

    def __init__(self, directory: str) -> None:
        self.root = os.path.abspath(directory)
        self._source = StalenessChecker()
        self._pending: dict[str, list[str]] = {}  # destination directory -> record lines
        self._copied: dict[str, dict[str, dict[str, Any]]] = {}  # destination directory -> path -> record

    def copy(self, target: FileSystemTarget, destination: str) -> bool:
        """Queue the record of ``target`` for its copy at ``destination``; False if it has none."""
        try:
            record = self._source.record(target)
        except Exception as exc:  # unreadable or unreachable: the copy stays without record
            logger.warning("could not read the provenance record of %s: %s", destination, exc)
            return False
        if record is None:
            return False
        record = {key: value for key, value in record.items() if key != "copy"}  # a copy of a copy: its origin
        directory = os.path.dirname(destination)
        known = self._known(directory).get(destination)
        if known is not None and {k: v for k, v in known.items() if k != "copy"} == record:
            return True  # fetched before, from the same run
        source = provenance.describe_location(target)
        record["copy"] = {"path": destination, "source": source.get("url") or source.get("path"), "time": time.time()}
        self._known(directory)[destination] = record
        self._pending.setdefault(directory, []).append(json.dumps(record, separators=(",", ":"), default=str))
        return True

    def _known(self, directory: str) -> dict[str, dict[str, Any]]:
        known = self._copied.get(directory)
        if known is None:
            path = provenance.copy_log_path(self.root, directory)
            known = self._copied[directory] = provenance.parse_log(path) if os.path.exists(path) else {}
        return known

    def close(self) -> None:
        """Append the queued records, one write per destination directory."""
        pending, self._pending = self._pending, {}
        for directory, lines in pending.items():
            try:
                provenance.append_lines(provenance.copy_log_path(self.root, directory), lines)
            except OSError as exc:
                logger.warning("could not write %d provenance records of the outputs fetched to %s: %s",
                               len(lines), directory, exc)
