"""Code bundles: the analysis, pylaw and their Python packages in one content-hashed tarball.

A worker without a shared file system sees nothing of the submit host. The bundle carries
what a branch needs to import its task, built from what is installed here:

``analysis/``
    the tracked files (``git ls-files``) of the git checkout that contains the task's
    module (never ``.git``, never untracked files). Uncommitted changes to tracked files
    are included as they are in the working tree (``[bundle] dirty = include``, the
    default: the content hash then differs from the committed version's) or refused with
    the list of files (``dirty = refuse``). A tracked symlink is stored as a copy of the
    file it points to, if that is inside the checkout; one pointing outside (or to a
    directory) is refused. Submodules are left out, and so is pylaw's package directory
    when it is in this checkout (the running pylaw is in ``site/``). A module outside any git checkout
    brings its top-level package directory (or its single file) instead.
``site/``
    pylaw's package directory, and the files of every installed distribution in the
    requirement closure of luigi, pylaw's own requirements and ``[bundle] packages``,
    as listed by ``importlib.metadata``. Only pure-Python and ``abi3`` distributions
    are copied (they import on the worker's CPython whatever its minor version); one with
    extension modules for this CPython only is an error unless the worker provides it
    (``[bundle] provided``) or ``[bundle] wheelhouse`` holds wheels for it, which the
    worker installs offline into a per-bundle venv.
``wheels/`` and ``wheels.txt``
    those wheels, and the names the worker installs from them.
``pythonpath.txt``
    the directories (relative to the unpacked bundle) the wrapper puts on ``PYTHONPATH``.
``code_version.json``
    the code version of the analysis at build time (repository, commit, ``git describe
    --always --dirty``), as provenance records name it: the worker has no checkout to ask,
    and the wrapper points records at this file (with the bundle's content hash).
``luigi_config.txt``
    the bundled Luigi config file (the submitter's ``$LUIGI_CONFIG_PATH`` or ``luigi.cfg``,
    if it is a tracked file of the checkout), which jobs read unless their environment sets
    ``LUIGI_CONFIG_PATH`` itself.

The name is ``pylaw-bundle-<first 16 hex of the content hash>.tar.gz``: sha256 over the
sorted (path, mode, content) of every file, the same function the job wrapper runs on the
unpacked files. The tarball is reproducible (sorted entries, mtime 0, owner 0, no user
names, gzip without name or time), so an unchanged bundle has the same name and bytes,
and building it again returns the existing file.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata as metadata
import io
import json
import logging
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import luigi

from pylaw.config import store_root
from pylaw.errors import BundleError
from pylaw.target.publish import staged

logger = logging.getLogger("pylaw.job")

PREFIX = "pylaw-bundle-"
SUFFIX = ".tar.gz"
#: the file of a bundle that names the analysis's code version (read by pylaw.provenance in jobs)
CODE_VERSION = "code_version.json"
#: what is never bundled from a package directory: byte code and tool caches
SKIPPED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".git"})


class bundle(luigi.Config):  # noqa: N801 - the class name is the config section name
    """The ``[bundle]`` config section: what goes into the code bundle of jobs without a shared file system."""

    cache_dir = luigi.Parameter(default="", description="where bundles are kept; default <store>/_pylaw_bundles")
    dirty = luigi.ChoiceParameter(default="include", choices=["include", "refuse"],
                                  description="uncommitted changes to tracked files: include them or refuse")
    packages = luigi.Parameter(default="", description="more installed distributions to bundle (with their "
                                                       "requirements), separated by spaces or commas")
    provided = luigi.Parameter(default="", description="distributions the worker's python provides itself "
                                                       "(not bundled, nor their requirements)")
    wheelhouse = luigi.Parameter(default="", description="directory of wheels the worker installs offline, for "
                                                         "distributions with version-specific compiled code")


@dataclass(frozen=True)
class BundleSettings:
    """What to bundle and where to keep it (see :class:`bundle` for the meaning of each)."""

    cache_dir: str
    dirty: str = "include"
    packages: tuple[str, ...] = ()
    provided: tuple[str, ...] = ()
    wheelhouse: str = ""

    @classmethod
    def from_config(cls) -> BundleSettings:
        section = bundle()
        return cls(cache_dir=section.cache_dir or os.path.join(store_root(), "_pylaw_bundles"),
                   dirty=section.dirty, packages=tuple(split_names(section.packages)),
                   provided=tuple(split_names(section.provided)), wheelhouse=section.wheelhouse)


@dataclass(frozen=True)
class Entry:
    """One file of the bundle: its path inside the bundle, normalised mode, and content."""

    path: str
    mode: int
    data: bytes


@dataclass(frozen=True)
class Bundle:
    """A bundle file in the cache; ``built`` is False when an identical one already existed."""

    path: str
    digest: str
    built: bool
    files: int
    size: int
    dirty: tuple[str, ...] = ()


def split_names(text: str) -> list[str]:
    return [name for name in re.split(r"[\s,]+", text) if name]


def normalize(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def file_mode(path: str) -> int:
    """The mode a file is stored with: executable or not, nothing else of the submitter's umask."""
    return 0o755 if os.stat(path).st_mode & 0o111 else 0o644


def content_digest(entries: Iterable[Entry]) -> str:
    """sha256 over the sorted (path, mode, size, content) of the entries; the wrapper computes the same."""
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.path):
        digest.update(f"{entry.path}\0{entry.mode:o}\0{len(entry.data)}\0".encode())
        digest.update(entry.data)
    return digest.hexdigest()


def read_entry(path: str, name: str) -> Entry:
    with open(path, "rb") as f:
        return Entry(name, file_mode(path), f.read())


# -- the analysis -----------------------------------------------------------------------


def import_root(module: str) -> tuple[str, str]:
    """``(file of the module, directory to put on sys.path to import it)``."""
    mod = sys.modules.get(module)
    path = getattr(mod, "__file__", None)
    if not path:
        raise BundleError(f"module {module} has no file (imported? a namespace package?): cannot bundle it")
    path = os.path.realpath(path)
    root = os.path.dirname(path)
    for _ in range(module.count(".") + path.endswith("__init__.py")):  # up from a.b.c to the root
        root = os.path.dirname(root)
    return path, root


def git(checkout: str, *args: str) -> bytes:
    try:
        return subprocess.run(["git", "-C", checkout, *args], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.decode(errors="replace").strip() if isinstance(exc, subprocess.CalledProcessError) \
            else str(exc)
        raise BundleError(f"git {' '.join(args)} in {checkout} failed: {detail}") from exc


def git_toplevel(directory: str) -> str | None:
    try:
        return os.path.realpath(git(directory, "rev-parse", "--show-toplevel").decode().strip())
    except BundleError:
        return None  # not a checkout, or no git


def dirty_files(toplevel: str) -> list[str]:
    """Tracked files whose working-tree content differs from the last commit (staged or not)."""
    out = git(toplevel, "status", "--porcelain=v1", "-z", "--untracked-files=no", "--no-renames")
    return sorted(item[3:] for item in out.decode().split("\0") if len(item) > 3)


def tracked_files(toplevel: str) -> list[tuple[str, str]]:
    """``(git mode, path)`` of every tracked file (``git ls-files -s``)."""
    files = []
    for item in git(toplevel, "ls-files", "-s", "-z").decode().split("\0"):
        if item:
            meta, path = item.split("\t", 1)
            files.append((meta.split()[0], path))
    return files


class Analysis(NamedTuple):
    entries: list[Entry]      # under analysis/
    root: str                 # the import root, inside the bundle
    dirty: tuple[str, ...]    # tracked files that differ from the last commit
    base: str                 # the directory analysis/ stands for


def analysis_entries(module: str, dirty_policy: str) -> Analysis:
    """The files of the task module's checkout (or package, outside git) for ``analysis/``."""
    path, root = import_root(module)
    toplevel = git_toplevel(os.path.dirname(path))
    if toplevel is None:
        top = module.split(".")[0]
        source = os.path.join(root, top) if os.path.isdir(os.path.join(root, top)) else path
        logger.warning("%s is in no git checkout: bundling its top-level package %s", module, source)
        return Analysis([*package_dir_entries(source, f"analysis/{os.path.basename(source)}")], "analysis", (),
                        os.path.dirname(source))
    dirty = dirty_files(toplevel)
    if dirty and dirty_policy == "refuse":
        shown = ", ".join(dirty[:20]) + (f" and {len(dirty) - 20} more" if len(dirty) > 20 else "")
        raise BundleError(f"the checkout {toplevel} has uncommitted changes to tracked files ({shown}); commit "
                          f"or stash them, or set [bundle] dirty = include to bundle the working tree")
    if dirty:
        logger.warning("bundling uncommitted changes of %s: %s", toplevel, ", ".join(dirty[:20]))
    # the import root may lie above the checkout (the checkout is the package itself)
    inside, above = root == toplevel or root.startswith(toplevel + os.sep), toplevel.startswith(root + os.sep)
    if not (inside or above):
        raise BundleError(f"module {module} ({path}) is imported from {root}, which is neither inside nor above "
                          f"its checkout {toplevel}")
    base = toplevel if inside else root
    own = pylaw_dir() + os.sep  # the running pylaw comes from site/, also when it is in this checkout
    entries = []
    for mode, rel in tracked_files(toplevel):
        full = os.path.join(toplevel, rel)
        if mode == "160000" or full.startswith(own):
            continue  # a submodule (its own checkout, not bundled), or pylaw itself
        if not os.path.lexists(full):
            continue  # deleted in the working tree (listed as dirty above)
        if mode == "120000" or os.path.islink(full):
            full = resolve_link(full, toplevel)
        entries.append(read_entry(full, "analysis/" + os.path.relpath(os.path.join(toplevel, rel), base)))
    where = os.path.relpath(root, base)
    return Analysis(entries, "analysis" if where == "." else f"analysis/{where}", tuple(dirty), base)


def luigi_config(analysis: Analysis) -> list[Entry]:
    """``luigi_config.txt``, naming the bundled copy of the Luigi config file this process reads.

    Luigi reads ``luigi.cfg`` of the working directory and ``$LUIGI_CONFIG_PATH``; jobs get the
    one that is part of the bundle (the environment variable's first), so that storage
    elements and task defaults are the same on the worker.
    """
    names = {entry.path for entry in analysis.entries}
    for candidate in (os.environ.get("LUIGI_CONFIG_PATH", ""), "luigi.cfg"):
        if not candidate or not os.path.isfile(candidate):
            continue
        rel = os.path.relpath(os.path.realpath(candidate), analysis.base)
        if f"analysis/{rel}" in names:
            return [Entry("luigi_config.txt", 0o644, f"analysis/{rel}\n".encode())]
        logger.warning("the Luigi config %s is not a file of the bundle (untracked, or outside the checkout): "
                       "jobs without a shared file system will not read it", candidate)
    return []


def resolve_link(path: str, toplevel: str) -> str:
    target = os.path.realpath(path)
    if not (target + os.sep).startswith(toplevel + os.sep):
        raise BundleError(f"tracked symlink {path} points outside its checkout ({target}): a job could not see "
                          f"that file; replace the link by the file, or commit the file it points to")
    if not os.path.isfile(target):
        raise BundleError(f"tracked symlink {path} does not point to a file ({target}); bundles hold files only")
    return target


def pylaw_dir() -> str:
    """The directory of the pylaw package this process runs."""
    import pylaw

    return os.path.dirname(os.path.realpath(pylaw.__file__))


def package_dir_entries(source: str, name: str) -> Iterable[Entry]:
    """Every file under a package directory (or the single file), without byte code and caches."""
    if os.path.isfile(source):
        yield read_entry(source, name)
        return
    for directory, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for file in sorted(files):
            if not file.endswith((".pyc", ".pyo")):
                full = os.path.join(directory, file)
                yield read_entry(full, f"{name}/{os.path.relpath(full, source)}".replace(os.sep, "/"))


# -- the packages -----------------------------------------------------------------------


REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_closure(roots: Sequence[str], provided: Iterable[str]) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` need, transitively; ``provided`` ones (and theirs) left out.

    Requirements for extras are not followed. A requirement with an environment marker
    (``; sys_platform == 'win32'``) that is not installed here is taken to be for another
    platform; one without a marker that is not installed is an error.
    """
    skip = {normalize(n) for n in provided}
    found: dict[str, metadata.Distribution] = {}
    todo = [(name, "", "the bundle configuration") for name in roots]
    while todo:
        name, marker, wanted_by = todo.pop()
        key = normalize(name)
        if key in skip or key in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if marker:
                continue
            raise BundleError(f"{name}, required by {wanted_by}, is not installed in {sys.prefix}: install it, "
                              f"or list it in [bundle] provided if the worker has it") from None
        found[key] = dist
        for requirement in dist.requires or []:
            spec, _, marker = requirement.partition(";")
            match = REQUIREMENT.match(spec)
            if match and "extra" not in marker:
                todo.append((match.group(1), marker.strip(), f"{dist.metadata['Name']} {dist.version}"))
    return [found[key] for key in sorted(found)]


def extension_modules(dist: metadata.Distribution) -> list[str]:
    """Files of ``dist`` that are extension modules built for this CPython only (not abi3)."""
    compiled = []
    for file in dist.files or []:
        name = str(file)
        if name.endswith((".so", ".pyd")) and not name.endswith(".abi3.so") \
                and not any(part.endswith(".libs") for part in file.parts[:-1]):
            compiled.append(name)
    return compiled


def is_editable(dist: metadata.Distribution) -> bool:
    text = dist.read_text("direct_url.json")
    return text is not None and bool(json.loads(text).get("dir_info", {}).get("editable"))


def distribution_entries(dist: metadata.Distribution) -> Iterable[Entry]:
    label = f"{dist.metadata['Name']} {dist.version}"
    if dist.files is None:
        raise BundleError(f"{label} has no file list (RECORD): reinstall it with pip to bundle it")
    if is_editable(dist):
        raise BundleError(f"{label} is installed in editable mode: its code is not in site-packages; install it "
                          f"normally (pip install .) to bundle it, or list it in [bundle] provided")
    for file in dist.files:
        name = str(file).replace(os.sep, "/")
        if name.startswith(("../", "/")) or "__pycache__" in file.parts or name.endswith((".pyc", ".pyo")) \
                or name.endswith(".dist-info/direct_url.json"):
            continue  # scripts in bin/, byte code, where it was installed from
        full = str(dist.locate_file(file))
        if os.path.isfile(full):
            yield read_entry(full, f"site/{name}")


def wheel_entries(dists: Sequence[metadata.Distribution], wheelhouse: str) -> list[Entry]:
    """The wheels of ``dists`` in the wheelhouse, and ``wheels.txt`` naming what the worker installs."""
    wheels = sorted(os.listdir(wheelhouse)) if wheelhouse and os.path.isdir(wheelhouse) else []
    entries, missing = [], []
    for dist in dists:
        key = normalize(dist.metadata["Name"])
        own = [w for w in wheels if w.endswith(".whl") and normalize(w.split("-")[0]) == key]
        if not own:
            missing.append(dist)
        entries += [read_entry(os.path.join(wheelhouse, w), f"wheels/{w}") for w in own]
    if missing:
        lines = "; ".join(f"{d.metadata['Name']} {d.version} ({extension_modules(d)[0]})" for d in missing)
        where = f"no wheel for it in [bundle] wheelhouse {wheelhouse}" if wheelhouse else "no [bundle] wheelhouse"
        raise BundleError(f"compiled for this CPython only, so not importable on a worker's other Python: {lines}; "
                          f"{where}. List them in [bundle] provided if the worker's python has them (e.g. XRootD, "
                          f"gfal2 from the site), or put wheels for the worker's Python into [bundle] wheelhouse")
    names = "".join(f"{d.metadata['Name']}\n" for d in dists)
    return [*entries, Entry("wheels.txt", 0o644, names.encode())] if dists else entries


def site_entries(settings: BundleSettings) -> list[Entry]:
    """pylaw's package directory, the portable distributions of the closure, wheels for the others."""
    entries = list(package_dir_entries(pylaw_dir(), "site/pylaw"))
    try:
        roots = [REQUIREMENT.match(r).group(1) for r in metadata.requires("pylaw") or []  # type: ignore[union-attr]
                 if "extra" not in r.partition(";")[2]]
    except metadata.PackageNotFoundError:
        roots = []  # pylaw imported from a checkout on sys.path: luigi is its only requirement
    provided = {normalize(n) for n in settings.provided} | {"pylaw"}
    compiled = []
    for dist in requirement_closure(["luigi", *roots, *settings.packages], provided):
        if extension_modules(dist):
            compiled.append(dist)
        else:
            entries += distribution_entries(dist)
    return entries + wheel_entries(compiled, settings.wheelhouse)


# -- building ---------------------------------------------------------------------------


def code_version_entry(module: str, dirty: Sequence[str]) -> Entry:
    """``code_version.json``: the submitter's code version of ``module``, for the records of jobs.

    The same function as records made on the submit host use, so the two name one version
    alike; with the uncommitted files that went into the bundle (their content is in the
    bundle's hash, not in any commit).
    """
    from pylaw.provenance import module_directory, read_git_version

    directory = module_directory(module)  # asked now: the working tree may have changed since the first record
    version = read_git_version(directory) if directory else {"error": f"module {module} has no file"}
    if dirty:
        version = {**version, "dirty_files": list(dirty)}
    return Entry(CODE_VERSION, 0o644, json.dumps(version, sort_keys=True).encode() + b"\n")


def collect(module: str, settings: BundleSettings) -> tuple[list[Entry], tuple[str, ...]]:
    """Every entry of the bundle for the task module ``module``, sorted, and the dirty files included."""
    analysis = analysis_entries(module, settings.dirty)
    entries: dict[str, Entry] = {}
    for entry in [*analysis.entries, *site_entries(settings), *luigi_config(analysis),
                  code_version_entry(module, analysis.dirty)]:
        entries.setdefault(entry.path, entry)  # two distributions owning one file: the first wins
    entries["pythonpath.txt"] = Entry("pythonpath.txt", 0o644, f"{analysis.root}\nsite\n".encode())
    return [entries[path] for path in sorted(entries)], analysis.dirty


def write_tarball(entries: Sequence[Entry], path: str) -> None:
    """A reproducible tar.gz, written to a temporary name and renamed: never seen half-written."""
    with staged(path) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
                    tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for entry in entries:
                info = tarfile.TarInfo(entry.path)
                info.size, info.mode, info.mtime = len(entry.data), entry.mode, 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(entry.data))
        raw.flush()
        os.fsync(raw.fileno())


def build_bundle(module: str, settings: BundleSettings) -> Bundle:
    """The bundle for the task module ``module``: built into ``settings.cache_dir``, or the existing one."""
    entries, dirty = collect(module, settings)
    digest = content_digest(entries)
    os.makedirs(settings.cache_dir, exist_ok=True)
    path = os.path.join(settings.cache_dir, f"{PREFIX}{digest[:16]}{SUFFIX}")
    built = not os.path.exists(path)
    if built:
        write_tarball(entries, path)
        logger.info("built code bundle %s (%d files)", path, len(entries))
    return Bundle(path=path, digest=digest, built=built, files=len(entries), size=os.path.getsize(path),
                  dirty=dirty)
