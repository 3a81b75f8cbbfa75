"""Remote targets on grid storage, layered interface -> file system -> target.

- :mod:`~pylaw.target.remote.interface`: the file-interface contract (the primitives),
  checked by the shipped suite :mod:`~pylaw.target.remote.contract`;
- :mod:`~pylaw.target.remote.registry`: interfaces by name (``interface = NAME``): the
  built-in :mod:`~pylaw.target.remote.gfal` (GFAL2, the one place where ``gfal2.GError``
  is mapped to :mod:`pylaw.errors`), :mod:`~pylaw.target.remote.xrootd`,
  :mod:`~pylaw.target.remote.local` and :mod:`~pylaw.target.remote.memory`, and
  third-party ones;
- :mod:`~pylaw.target.remote.filesystem`: a storage element (base URLs with fallback,
  retries, atomic transfers), configured in :mod:`~pylaw.target.remote.config`;
- :mod:`~pylaw.target.remote.cache`: the optional local cache;
- :mod:`~pylaw.target.remote.checksum`: checksums computed while data streams by, compared
  with the ones the storage reports;
- :mod:`~pylaw.target.remote.publish`: the one atomic upload protocol;
- :mod:`~pylaw.target.remote.stream`: streaming, seekable reads;
- :mod:`~pylaw.target.remote.transfer`: batch transfers, with progress events
  (:mod:`~pylaw.target.remote.progress`);
- :mod:`~pylaw.target.remote.target`: the targets tasks use.

Importing this package imports none of its modules (nor ``gfal2``, nor Luigi): a name does, when first used.
"""

from importlib import import_module
from typing import Any

#: public names -> their modules, imported on first use: a storage agent (a fresh process
#: importing one interface module) does not pay for Luigi, which the targets import.
_LAZY = {
    "RemoteCache": "cache", "StorageConfig": "config", "read_storage_config": "config",
    "RemoteFileSystem": "filesystem", "FileInterface": "interface", "ReadHandle": "interface",
    "RemoteStat": "interface", "LocalInterface": "local", "MemoryInterface": "memory",
    "ProgressBar": "progress", "TransferEvent": "progress", "register_interface": "registry",
    "RetryPolicy": "retry", "DCacheDirectoryTarget": "target", "DCacheTarget": "target",
    "RemoteDirectoryTarget": "target", "RemoteFileTarget": "target", "get_filesystem": "target",
    "register_filesystem": "target", "TransferResult": "transfer", "copy_many": "transfer", "fetch": "transfer",
    "upload": "transfer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
