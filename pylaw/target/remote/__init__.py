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

Importing this package does not import ``gfal2``; the first remote operation does.
"""

from pylaw.target.remote.cache import RemoteCache
from pylaw.target.remote.config import StorageConfig, read_storage_config
from pylaw.target.remote.filesystem import RemoteFileSystem
from pylaw.target.remote.interface import FileInterface, ReadHandle, RemoteStat
from pylaw.target.remote.local import LocalInterface
from pylaw.target.remote.memory import MemoryInterface
from pylaw.target.remote.progress import ProgressBar, TransferEvent
from pylaw.target.remote.registry import register_interface
from pylaw.target.remote.retry import RetryPolicy
from pylaw.target.remote.target import (
                                        DCacheDirectoryTarget,
                                        DCacheTarget,
                                        RemoteDirectoryTarget,
                                        RemoteFileTarget,
                                        get_filesystem,
                                        register_filesystem,
)
from pylaw.target.remote.transfer import TransferResult, copy_many, fetch, upload

__all__ = [
    "DCacheDirectoryTarget", "DCacheTarget", "FileInterface", "LocalInterface", "MemoryInterface", "ProgressBar",
    "ReadHandle", "RemoteCache", "RemoteDirectoryTarget", "RemoteFileSystem", "RemoteFileTarget", "RemoteStat",
    "RetryPolicy", "StorageConfig", "TransferEvent", "TransferResult", "copy_many", "fetch", "get_filesystem",
    "read_storage_config", "register_filesystem", "register_interface", "upload",
]
