"""Provenance records: what made an output, written by every task run.

One record per successful ``run()`` of a :class:`pylaw.Task` (whatever its number of
outputs): one line of JSON, filed under the directory of the task's first output in a
hidden tree at the root of the output's storage, which mirrors the layout of the outputs::

    <store>/Plot/v1/mass.png                              a local output
    <store>/.pylaw-prov/Plot/v1/records.jsonl             one line per task run writing there
    <se base>/reco/v1/reco.root                           a remote output
    <se base>/.pylaw-prov/reco/v1/reco.root.json          its record, on the same storage element

Output directories are left exactly as the tasks write them: no listing, collection,
existence check or ``complete()`` ever sees a record, and removing outputs leaves no
stray entry. (A local output outside the store has its records in ``.pylaw-prov/``
beside it.) Locally, the records of one directory share an append-only log (one
``write()`` per record: a file per record doubled the run time of trivial tasks); a
remote output's record is a file uploaded atomically, as outputs are.

The record is written after ``run()`` returned and every declared output exists, so a
crash leaves outputs without record, never a record without outputs. Writing it never
fails the task: a record that cannot be written is a warning. What stays the same for a
whole process (code version, package versions, host, run location) is computed and
serialised once. ``[provenance] enabled = false`` switches records off.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import logging
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from json.encoder import encode_basestring_ascii
from typing import Any

import luigi

import pylaw
from pylaw import config
from pylaw.errors import ConfigError, ProvenanceError
from pylaw.target.base import FileSystemTarget
from pylaw.target.collection import iter_leaves
from pylaw.target.local import LocalTargetMixin
from pylaw.target.remote.interface import redact

logger = logging.getLogger("pylaw.provenance")

#: the hidden directory, at the root of a storage, that holds the records (mirroring the outputs' layout)
RECORD_DIR = ".pylaw-prov"
#: the log of records of one local output directory, inside RECORD_DIR
LOG_NAME = "records.jsonl"
#: version of the record layout (bumped on incompatible changes)
FORMAT = 1
#: packages whose versions are recorded when the process has imported them
KEY_PACKAGES = ("numpy", "scipy", "pandas", "matplotlib", "awkward", "uproot", "coffea", "ROOT", "tensorflow",
                "torch")

#: how many records were read in this process (status must read none unless staleness is asked for)
reads = 0


class provenance(luigi.Config):  # noqa: N801 - the class name is the config section name
    """The ``[provenance]`` config section."""

    enabled = luigi.BoolParameter(default=True, description="write a provenance record for every task run")
    input_checksums = luigi.BoolParameter(
        default=True, parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="record the checksum the storage reports for each remote input (one more call per input)")


@functools.cache
def settings() -> tuple[bool, bool]:
    """``[provenance]`` (or ``--provenance-enabled``...), read once per process as the code version
    is: Luigi's look-up costs 70 us, a tenth of a trivial task."""
    try:
        section = provenance()
        return bool(section.enabled), bool(section.input_checksums)
    except Exception as exc:  # luigi raises plain errors for unparsable values
        raise ConfigError(f"the [provenance] config section is malformed: {config.root_cause(exc)}") from exc


def enabled() -> bool:
    """``[provenance] enabled``: whether task runs write records."""
    return settings()[0]


def input_checksums() -> bool:
    """``[provenance] input_checksums``: whether records ask the storage for remote inputs' checksums."""
    return settings()[1]


# -- where records live --------------------------------------------------------------------

def anchor(output: Any) -> FileSystemTarget | None:
    """The output whose directory a task's record is filed under: its first file-system target (or None)."""
    return next((leaf for leaf in iter_leaves(output) if isinstance(leaf, FileSystemTarget)), None)


def record_target(output: Any) -> Any:
    """The record file of the task run whose first output is the remote ``output``."""
    from pylaw.target.remote.target import RemoteFileTarget

    return RemoteFileTarget(f"/{RECORD_DIR}{output.path}.json", fs=output.fs)


def record_directory(directory: str) -> str:
    """Where the records of the local output directory ``directory`` are kept."""
    root = config.store_root()
    if directory == root or directory.startswith(root + "/"):
        return f"{root}/{RECORD_DIR}{directory[len(root):]}"
    return f"{directory}/{RECORD_DIR}"


def describe_location(target: Any) -> dict[str, Any]:
    """How a record names a target: a local path, or storage element, path and (redacted) URL."""
    if isinstance(target, LocalTargetMixin):
        return {"path": target.path}
    fs_name = getattr(target, "fs_name", None)
    if fs_name is not None:
        try:
            url = redact(target.url)
        except Exception:  # an unconfigured storage element: its name and path still say where
            url = None
        return {"fs": fs_name, "path": target.path, "url": url}
    return {"repr": redact(repr(target))}


# -- what stays the same for a process -----------------------------------------------------

def read_git_version(directory: str) -> dict[str, Any]:
    """Repository, commit and ``git describe --always --dirty`` of the checkout containing ``directory``, now.

    ``{"error": ...}`` outside a git checkout. Records use :func:`git_version`, the same
    once per process; a code bundle, built from the working tree as it is, asks afresh.
    """
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()

    try:
        top, commit = git("rev-parse", "--show-toplevel", "HEAD").splitlines()
        describe = git("describe", "--always", "--dirty")
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        stderr = getattr(exc, "stderr", "") or str(exc)
        return {"error": f"not a git checkout ({' '.join(stderr.split())[:200]})"}
    return {"repository": top, "commit": commit, "describe": describe, "dirty": describe.endswith("-dirty")}


#: :func:`read_git_version` once per directory and process
git_version = functools.cache(read_git_version)


def module_directory(module_name: str) -> str | None:
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    return os.path.dirname(os.path.abspath(path)) if path else None


@functools.cache
def code_version(module_name: str) -> dict[str, Any]:
    """The code version of the task module ``module_name`` and of pylaw (once per module and process).

    A module imported from an unpacked code bundle (a job without a shared file system,
    ``PYLAW_BUNDLE_DIR`` set by the job wrapper) has no checkout to ask: its version is the
    one the submitter's checkout had when the bundle was built, plus the bundle's hash.
    """
    directory = module_directory(module_name)
    if not directory:
        version: dict[str, Any] = {"error": f"module {module_name} has no file"}
    else:
        version = bundled_version(directory, os.environ) or git_version(directory)
    return {**version, "pylaw": pylaw.__version__}


def bundled_version(directory: str, env: Mapping[str, str]) -> dict[str, Any] | None:
    """The code version recorded in the bundle ``directory`` was unpacked from, or None (not from a bundle)."""
    root = env.get("PYLAW_BUNDLE_DIR", "")
    if not root or not (os.path.realpath(directory) + "/").startswith(os.path.realpath(root) + "/"):
        return None
    from pylaw.job.bundle import CODE_VERSION, PREFIX, SUFFIX  # in jobs only: it imports tarfile, gzip, ...
    digest = env.get("PYLAW_BUNDLE_DIGEST", "")
    bundle = {"name": f"{PREFIX}{digest}{SUFFIX}", "digest": digest}
    try:
        with open(os.path.join(root, CODE_VERSION)) as f:
            version = json.load(f)
    except (OSError, ValueError) as exc:
        return {"error": f"the code bundle names no code version (built by an older pylaw?): {exc}", "bundle": bundle}
    if not isinstance(version, dict):
        return {"error": f"{CODE_VERSION} of the code bundle is not a JSON object", "bundle": bundle}
    return {**version, "bundle": bundle}


@functools.cache
def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        module = sys.modules.get(name)
        return str(getattr(module, "__version__", "")) or None


def package_versions() -> dict[str, str | None]:
    """Versions of luigi and of the key packages imported so far (each looked up once)."""
    names = ["luigi", *(name for name in KEY_PACKAGES if name in sys.modules)]
    return {name: _package_version(name) for name in names}


@functools.cache
def host() -> dict[str, str]:
    return {"host": socket.getfqdn(), "platform": platform.platform(), "python": platform.python_version(),
            "executable": sys.executable}


@functools.cache
def _condor_job_ad(path: str) -> dict[str, str]:
    """``ClusterId``/``ProcId``/``GlobalJobId`` of an HTCondor job ad file (read once)."""
    found: dict[str, str] = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition("=")
                if key.strip() in ("ClusterId", "ProcId", "GlobalJobId"):
                    found[key.strip()] = value.strip().strip('"')
    except OSError:
        pass
    return found


def run_location(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Where this process runs: ``{"system": "local"|"slurm"|"htcondor"|..., "job_id": ..., ...}``.

    Batch systems say it in the environment of the job (HTCondor in its job ad).
    ``PYLAW_JOB_SYSTEM``/``PYLAW_JOB_ID``, set by a job wrapper, name any other system
    (an ARC or gLite job id) the same way. ``env``: the process environment by default.
    """
    env = os.environ if env is None else env
    if env.get("PYLAW_JOB_ID"):
        return {"system": env.get("PYLAW_JOB_SYSTEM", "batch"), "job_id": env["PYLAW_JOB_ID"]}
    if env.get("SLURM_JOB_ID"):
        location: dict[str, Any] = {"system": "slurm", "job_id": env["SLURM_JOB_ID"]}
        if env.get("SLURM_ARRAY_JOB_ID"):
            location["array_job_id"] = env["SLURM_ARRAY_JOB_ID"]
            location["array_task_id"] = env.get("SLURM_ARRAY_TASK_ID")
        return location
    ad = _condor_job_ad(env["_CONDOR_JOB_AD"]) if env.get("_CONDOR_JOB_AD") else {}
    if "ClusterId" in ad:
        return {"system": "htcondor", "job_id": f"{ad['ClusterId']}.{ad.get('ProcId', '0')}",
                "global_job_id": ad.get("GlobalJobId")}
    if env.get("CONDOR_ID"):  # the cluster.proc some wrappers export
        return {"system": "htcondor", "job_id": env["CONDOR_ID"]}
    return {"system": "local", "job_id": None}


# -- building and writing a record -------------------------------------------------------

def parameters(task: luigi.Task) -> tuple[dict[str, str], list[str]]:
    """Every parameter value as Luigi serialises it on the command line, and the private names (no value)."""
    values, private = {}, []
    kwargs = task.param_kwargs
    for name, param in task.get_params():
        if param.visibility == PRIVATE:
            private.append(name)
        elif name in kwargs:
            values[name] = param.serialize(kwargs[name])
    return values, private


PRIVATE = luigi.parameter.ParameterVisibility.PRIVATE


def describe_input(target: Any, checksum: bool = False) -> dict[str, Any]:
    """Location, size and mtime (one stat) of a target the task read.

    With ``checksum``, a remote file also gets the checksum its storage reports (the
    configured algorithm's, ``"adler32": "0a1b2c3d"``; storage elements keep it, so asking
    is one call, no read of the file); none where the storage cannot tell.
    """
    entry = describe_location(target)
    try:
        if isinstance(target, LocalTargetMixin):
            stat = os.stat(target.path)
            entry.update(size=stat.st_size, mtime=stat.st_mtime)
        elif hasattr(target, "fs_name"):
            remote = target.stat()
            entry.update(size=remote.size, mtime=remote.mtime)
            if checksum and not remote.is_dir:
                entry.update(storage_checksum(target))
    except Exception as exc:  # gone, or a directory the storage cannot stat: the location is still recorded
        entry["stat_error"] = redact(f"{type(exc).__name__}: {exc}")
    return entry


def storage_checksum(target: Any) -> dict[str, str]:
    """``{algorithm: value}`` as the storage of the remote file ``target`` reports it, or ``{}``."""
    fs = target.fs
    algorithm = fs.checksum_algorithm
    if algorithm is None or not fs.reports_checksums():
        return {}
    try:
        value = fs.checksum(target.path)
    except Exception as exc:  # the record says what it could not learn; the task succeeded anyway
        return {"checksum_error": redact(f"{type(exc).__name__}: {exc}")}
    return {algorithm: value} if value else {}


#: one encoder for every record (``json.dumps`` with options builds a new one per call)
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


@functools.cache
def _static_part(module: str) -> str:
    """The JSON members every record of this process and task module shares (computed once)."""
    return _ENCODER.encode({"code": code_version(module), "environment": {**host(), "packages": package_versions()},
                            "location": run_location()})[1:-1]


def build_record(task: luigi.Task, started: float, ended: float) -> dict[str, Any]:
    """The record of a run of ``task`` that went from ``started`` to ``ended`` (epoch seconds)."""
    return json.loads(record_text(task, started, ended, task.output()))


def record_text(task: luigi.Task, started: float, ended: float, outputs: Any) -> str:
    """The record as one line of JSON.

    The part shared by the whole process is serialised once, the part given by the class
    and parameter values once per workflow (its branches differ in ``branch`` only).
    """
    return _compose(task, started, ended, outputs, _inputs_text(task))


def _inputs_text(task: luigi.Task) -> str:
    """The encoded input entries of ``task`` (their stats taken now, right after the run)."""
    if type(task).requires is luigi.Task.requires and "requires" not in task.__dict__:
        return ""  # reads nothing
    return ",".join(_encode_entry(describe_input(leaf, input_checksums())) for leaf in iter_leaves(task.input()))


def _compose(task: luigi.Task, started: float, ended: float, outputs: Any, ins: str) -> str:
    outs = _encode_entry({"path": outputs.path}) if isinstance(outputs, LocalTargetMixin) \
        else ",".join(map(_encode_entry, map(describe_location, iter_leaves(outputs))))
    return (f'{_head(task)},"time":{{"start":{started!r},"end":{ended!r}}},"outputs":[{outs}],"inputs":[{ins}],'
            f'{_static_part(type(task).__module__)}}}')


def _encode_entry(entry: dict[str, Any]) -> str:
    """JSON of an output or input entry; local ones formatted directly (3x faster than the encoder)."""
    if len(entry) == 1 and "path" in entry:
        return f'{{"path":{encode_basestring_ascii(entry["path"])}}}'
    if len(entry) == 3 and "path" in entry and type(entry.get("size")) is int and type(entry.get("mtime")) is float:
        return f'{{"path":{encode_basestring_ascii(entry["path"])},"size":{entry["size"]},"mtime":{entry["mtime"]!r}}}'
    return _ENCODER.encode(entry)


#: encoded record heads: (class, parameter names, values but the branch) -> text before and after the branch
_HEADS: dict[tuple[Any, ...], tuple[str, ...]] = {}
_MAX_HEADS = 1024
_BRANCH_MARK = "\x00pylaw-branch\x00"
#: the head used last: (class, parameter names, values but the branch, its pieces). Consecutive
#: branches of a workflow share every other value, as the very same objects: comparing the
#: tuples then takes the identity shortcut, while hashing them for ``_HEADS`` would call the
#: values' Python-level ``__hash__`` (a branch range's dataclass), a third of a record's cost.
_last_head: tuple[Any, ...] = (None, (), (), ())


def _head(task: luigi.Task) -> str:
    """``{"pylaw_provenance":1,"task":...,"parameters":...`` (no closing brace) of ``task``'s record."""
    global _last_head
    kwargs = task.param_kwargs
    branch = kwargs.get("branch")
    numbered = type(branch) is int  # a workflow's branch: a number, safe to paste into JSON
    cls, names, values = type(task), tuple(kwargs), tuple(kwargs.values())
    if numbered:
        slot = names.index("branch")
        values = values[:slot] + values[slot + 1:]
    last = _last_head
    if last[0] is cls and last[1] == names and last[2] == values:
        pieces = last[3]
    else:
        pieces = _head_pieces(task, (cls, names, values), numbered)
        _last_head = (cls, names, values, pieces)
    return f"{pieces[0]}{branch}{pieces[1]}" if numbered and len(pieces) == 2 else pieces[0]


def _head_pieces(task: luigi.Task, key: tuple[Any, ...], numbered: bool) -> tuple[str, ...]:
    """The encoded head of ``task``, split where the branch number goes (cached by ``key`` if hashable)."""
    try:
        pieces = _HEADS.get(key)
    except TypeError:  # unhashable parameter values (lists): encoded every time
        return _encode_head(task, numbered)
    if pieces is None:
        pieces = _encode_head(task, numbered)
        if len(_HEADS) < _MAX_HEADS:
            _HEADS[key] = pieces
    return pieces


def _encode_head(task: luigi.Task, numbered: bool) -> tuple[str, ...]:
    values, private = parameters(task)
    if numbered and "branch" in values:
        values["branch"] = _BRANCH_MARK
    head: dict[str, Any] = {"pylaw_provenance": FORMAT,
                            "task": {"family": task.get_task_family(), "module": type(task).__module__},
                            "parameters": values, "private_parameters": private}
    if "shift" in values:
        head["shift"] = values["shift"]  # the effective shift: pylaw rewrites it before the task exists
    return tuple(_ENCODER.encode(head)[:-1].split(_ENCODER.encode(_BRANCH_MARK)[1:-1]))


def write_record(task: luigi.Task, started: float, ended: float, verified: bool = True,
                 outputs: Any = None) -> None:
    """Write the record of a successful run beside the task's first output; never raises.

    ``verified``: the outputs are known to exist (pylaw checked them); else (a task with
    its own ``complete()``) a record is written only if the first output exists.
    ``outputs``: ``task.output()`` if the caller has it already.
    """
    try:
        if not enabled():
            return
        outputs = task.output() if outputs is None else outputs
        output = outputs if isinstance(outputs, LocalTargetMixin) else anchor(outputs)
        if output is None or (not verified and not output.exists()):
            return
        if isinstance(output, LocalTargetMixin):
            directory = output.path.rpartition("/")[0]
            if _BATCH is not None:  # composed when the batch is written, with the others
                _hold(directory, (task, started, ended, outputs, _inputs_text(task)))
            else:
                _append_local(directory, record_text(task, started, ended, outputs))
        else:
            with record_target(output).open("w") as f:
                f.write(record_text(task, started, ended, outputs) + "\n")
    except Exception as exc:
        logger.warning("%s: could not write its provenance record (the task succeeded): %s: %s",
                       task, type(exc).__name__, redact(str(exc)))


#: open record logs of this process: output directory -> (log path, descriptor). Appending
#: to an open file costs 5 us, opening it 20 us more; a few only, for tasks writing into
#: many directories.
_LOGS: dict[str, tuple[str, int]] = {}
_MAX_OPEN_LOGS = 32


def log_path(directory: str) -> str:
    """The record log of the local output directory ``directory``."""
    return f"{record_directory(directory)}/{LOG_NAME}"


#: local records held back while :func:`batched_records` is active: directory -> what
#: :func:`_compose` makes them of. Composed in one go when written: one after the other,
#: the code and data of record making stay in the CPU's caches, which the task runs in
#: between evict (a record composed right after its run cost 4x as much).
_BATCH: dict[str, list[tuple[Any, ...]]] | None = None
_BATCH_SIZE, _BATCH_AGE = 256, 1.0
_batch_count, _batch_since = 0, 0.0


@contextlib.contextmanager
def batched_records() -> Iterator[None]:
    """Write the local records of the task runs inside in a few large appends, not one each.

    For a sequential loop over many branches (:class:`~pylaw.LocalWorkflow` with one
    worker): records are written when 256 are held back, with the first record after 1 s
    since the last write, and when the block ends. Killing the process in between loses
    held-back records only: outputs without record, never the reverse.
    """
    global _BATCH, _batch_count, _batch_since
    if _BATCH is not None:  # nested: the outer block writes them
        yield
        return
    _BATCH, _batch_count, _batch_since = {}, 0, time.monotonic()
    try:
        yield
    finally:
        _flush_batch()
        _BATCH = None


def _flush_batch() -> None:
    global _batch_count, _batch_since
    pending, _batch_count, _batch_since = dict(_BATCH or {}), 0, time.monotonic()
    if _BATCH:
        _BATCH.clear()
    for directory, held in pending.items():
        try:
            _append_local(directory, "\n\n".join(filter(None, map(_compose_held, held))))
        except Exception as exc:
            logger.warning("could not write %d provenance records of %s (the tasks succeeded): %s: %s",
                           len(held), directory, type(exc).__name__, redact(str(exc)))


def _compose_held(item: tuple[Any, ...]) -> str:
    """A held-back record's text; "" (and a warning) if it cannot be made: the others are still written."""
    try:
        return _compose(*item)
    except Exception as exc:
        logger.warning("%s: could not write its provenance record (the task succeeded): %s: %s",
                       item[0], type(exc).__name__, redact(str(exc)))
        return ""


def _drop_inherited_batch() -> None:
    global _BATCH
    _BATCH = None  # a child forked inside a batch: the parent writes those records


os.register_at_fork(after_in_child=_drop_inherited_batch)


def _hold(directory: str, item: tuple[Any, ...]) -> None:
    """Keep a record back for :func:`_flush_batch`; write the batch when it is full or old."""
    global _batch_count
    _BATCH.setdefault(directory, []).append(item)  # type: ignore[union-attr]
    _batch_count += 1
    if _batch_count >= _BATCH_SIZE or time.monotonic() - _batch_since > _BATCH_AGE:
        _flush_batch()


def _append_local(directory: str, text: str) -> None:
    """Append records to the directory's log: one ``write()``.

    Appends are atomic with respect to each other on a local file system (O_APPEND); the
    leading newline ends a line that a killed writer left unfinished, so a torn record
    never spoils the next one (readers skip lines that are no JSON).
    """
    path, fd = _LOGS.get(directory, ("", -1))
    if fd >= 0 and os.fstat(fd).st_nlink == 0:  # removed since (a store wiped in a long-lived process)
        os.close(_LOGS.pop(directory)[1])
        fd = -1
    if fd < 0:
        path = log_path(directory)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        if len(_LOGS) >= _MAX_OPEN_LOGS:
            os.close(_LOGS.pop(next(iter(_LOGS)))[1])
        _LOGS[directory] = (path, fd)
    data = f"\n{text}\n".encode()
    if os.write(fd, data) != len(data):
        raise OSError(f"short write to {path} (disk full?)")


# -- reading records -------------------------------------------------------------------------

def find_log(directory: str) -> str | None:
    """The record log of a local output directory, in whichever store it lies (None: it has none).

    The current store's is tried first; an output of another store (a colleague's, an
    older one) has its log in the ``.pylaw-prov`` tree of the closest ancestor holding one.
    """
    path = log_path(directory)
    if os.path.exists(path):
        return path
    ancestor = directory
    while True:
        candidate = f"{ancestor.rstrip('/')}/{RECORD_DIR}{directory[len(ancestor):]}/{LOG_NAME}"
        if os.path.exists(candidate):
            return candidate
        parent = os.path.dirname(ancestor)
        if parent == ancestor:
            return None
        ancestor = parent


def read_log(directory: str) -> dict[str, dict[str, Any]]:
    """Output path -> the latest record naming it, from the log of a local directory (one read)."""
    global reads
    reads += 1
    path = find_log(directory)
    return {} if path is None else parse_log(path)


def parse_log(path: str) -> dict[str, dict[str, Any]]:
    """Local output path -> the latest record naming it, in the record log ``path``.

    A fetched copy (:mod:`pylaw.fetch`) is named by its record's ``copy.path``.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    by_output: dict[str, dict[str, Any]] = {}
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a record its writer did not finish (killed)
        for output in record.get("outputs", ()):
            if "path" in output and "fs" not in output:
                by_output[output["path"]] = record
        copy = record.get("copy")
        if isinstance(copy, dict) and isinstance(copy.get("path"), str):
            by_output[copy["path"]] = record
    return by_output


def copy_log_path(root: str, directory: str) -> str:
    """The record log of ``directory``, a directory below ``root`` that outputs were fetched into."""
    return f"{root}/{RECORD_DIR}{directory[len(root):]}/{LOG_NAME}"


def append_lines(path: str, lines: list[str]) -> None:
    """Append records to the log ``path`` in one write, each on a line of its own (as task runs append theirs)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = "".join(f"\n{line}\n" for line in lines).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        if os.write(fd, data) != len(data):
            raise OSError(f"short write to {path} (disk full?)")
    finally:
        os.close(fd)


def read_remote_record(output: Any) -> dict[str, Any] | None:
    """The record uploaded beside a remote output, or None."""
    global reads
    reads += 1
    target = record_target(output)
    try:
        with target.open("r") as f:
            text = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise ProvenanceError(f"the provenance record {target.path} of {output.path} is not JSON ({exc}): "
                              f"remove it") from exc
    return record if isinstance(record, dict) else None


def find_record(output: FileSystemTarget) -> dict[str, Any] | None:
    """The record of the run that wrote ``output`` (its first output, or another one in the same directory)."""
    if isinstance(output, LocalTargetMixin):
        return read_log(output.path.rpartition("/")[0] or "/").get(output.path)
    record = read_remote_record(output)
    if record is not None:
        return record
    for name in _remote_record_names(output):  # ``output`` may be another than the run's first output
        candidate = read_remote_record(output.parent.child(name[:-len(".json")], "f"))
        if candidate and any(o.get("path") == output.path for o in candidate.get("outputs", [])):
            return candidate
    return None


def _remote_record_names(output: Any) -> list[str]:
    try:
        names = record_target(output).parent.listdir()
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [name for name in names if name.endswith(".json") and not name.startswith(".")]


_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def target_for(location: str | dict[str, Any]) -> FileSystemTarget:
    """A target for a local path, a URL on a configured storage element, or a record's location entry."""
    from pylaw.target.local import LocalFileTarget

    if isinstance(location, dict):
        if location.get("fs"):
            from pylaw.target.remote.target import RemoteFileTarget

            return RemoteFileTarget(location["path"], fs=location["fs"])
        if "path" not in location:
            raise ProvenanceError(f"the record names an input pylaw cannot locate: {location}")
        location = str(location["path"])
    path = location[len("file://"):] if location.startswith("file://") else location
    if not _URL.match(path):
        return LocalFileTarget(path)
    return _remote_target_for_url(path)


def _remote_target_for_url(url: str) -> FileSystemTarget:
    from pylaw.target.remote.target import RemoteFileTarget, get_filesystem

    names = [s.partition(":")[2] for s in luigi.configuration.get_config().sections() if s.startswith("storage:")]
    for name in names:
        fs = get_filesystem(name)
        for base in {b for bases in (fs.bases, *fs.operation_bases.values()) for b in bases}:
            if url.startswith(base + "/"):
                return RemoteFileTarget(url[len(base):], fs=fs)
    raise ProvenanceError(f"{redact(url)} is on no configured storage element ([storage:NAME] sections: "
                          f"{', '.join(names) or 'none'}): add one whose base it starts with")
