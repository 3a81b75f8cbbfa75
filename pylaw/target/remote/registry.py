"""The registry of file interfaces: ``interface = NAME`` in a ``[storage:NAME]`` section.

Built in: ``gfal`` (GFAL2, every grid protocol; the default), ``xrootd`` (XRootD's own
client, root:// only), ``local`` (file:// with the os module, no library needed) and
``memory`` (memory://, a process-local store for tests and examples).

A third-party interface is registered either in code::

    pylaw.target.remote.registry.register_interface("s3", "mypkg.s3:S3Interface")

or, without any import by the user, by an entry point of its distribution::

    [project.entry-points."pylaw.file_interfaces"]
    s3 = "mypkg.s3:S3Interface"

Registrations are lazy: a name maps to ``"module:Class"`` and nothing is imported until a
storage element uses it, so a backend whose package is missing costs nothing until then;
then its install hint is the error (:class:`~pylaw.errors.RemoteBackendMissingError`).
Entry points are read once, the first time a name is not found among the registered ones.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import threading

from pylaw.errors import RemoteBackendMissingError, StorageConfigError
from pylaw.target.remote.interface import FileInterface

#: the entry-point group third-party distributions register their interfaces under
ENTRY_POINT_GROUP = "pylaw.file_interfaces"


@dataclasses.dataclass
class _Registration:
    target: str | type[FileInterface]  # "module:Class", or the class itself
    hint: str


_BUILTIN = {
    "gfal": _Registration("pylaw.target.remote.gfal:GFALInterface", "the gfal2 Python bindings"),
    "xrootd": _Registration("pylaw.target.remote.xrootd:XRootDInterface", "the XRootD Python bindings"),
    "local": _Registration("pylaw.target.remote.local:LocalInterface", "pylaw itself"),
    "memory": _Registration("pylaw.target.remote.memory:MemoryInterface", "pylaw itself"),
}
_REGISTRY: dict[str, _Registration] = dict(_BUILTIN)
_ENTRY_POINTS_READ = False
_LOCK = threading.Lock()


def register_interface(name: str, target: str | type[FileInterface], install_hint: str = "") -> None:
    """Make ``interface = name`` build ``target`` (a FileInterface subclass, or ``"module:Class"``).

    ``install_hint`` says what to install when the module cannot be imported. A name
    registered again is replaced (so tests and sites can swap a backend).
    """
    key = name.strip().lower()
    if not key or not key.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"interface name {name!r} must be a word (letters, digits, - and _)")
    if isinstance(target, str) and ":" not in target:
        raise ValueError(f"interface {name!r}: {target!r} must read 'module:Class'")
    with _LOCK:
        _REGISTRY[key] = _Registration(target, install_hint or f"the package providing {target}")


def unregister_interface(name: str) -> None:
    """Forget a registered name (built-in names return to their built-in interface)."""
    key = name.strip().lower()
    with _LOCK:
        if key in _BUILTIN:
            _REGISTRY[key] = _BUILTIN[key]
        else:
            _REGISTRY.pop(key, None)


def _read_entry_points() -> None:
    global _ENTRY_POINTS_READ
    if _ENTRY_POINTS_READ:
        return
    _ENTRY_POINTS_READ = True
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        _REGISTRY.setdefault(point.name.lower(), _Registration(
            point.value, f"the distribution {point.dist.name if point.dist else point.value}"))


def interface_names() -> list[str]:
    """Every name ``interface =`` accepts (registered in code, built in, or by entry point)."""
    with _LOCK:
        _read_entry_points()
        return sorted(_REGISTRY)


def interface_class(name: str, section: str = "") -> type[FileInterface]:
    """The class registered as ``name``, imported now.

    Raises StorageConfigError (naming ``section``) for an unknown name, and
    RemoteBackendMissingError with the install hint when its module cannot be imported.
    """
    key = name.strip().lower()
    with _LOCK:
        if key not in _REGISTRY:
            _read_entry_points()
        registration = _REGISTRY.get(key)
        known = sorted(_REGISTRY)
    where = f"{section}: " if section else ""
    if registration is None:
        raise StorageConfigError(f"{where}interface = {name!r} is unknown; choose one of {', '.join(known)}, or "
                                 f"register it (register_interface, or the {ENTRY_POINT_GROUP!r} entry point)")
    if not isinstance(registration.target, str):
        return registration.target
    module_name, _, attribute = registration.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RemoteBackendMissingError(f"{where}interface {key!r} needs {registration.hint}, which cannot be "
                                        f"imported ({exc}); install it") from exc
    cls = getattr(module, attribute, None)
    if not (isinstance(cls, type) and issubclass(cls, FileInterface)):
        raise StorageConfigError(f"{where}interface {key!r} names {registration.target}, which is not a "
                                 "FileInterface subclass")
    return cls
