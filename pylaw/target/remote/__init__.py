"""Remote targets on grid storage, layered interface -> file system -> target.

- :mod:`~pylaw.target.remote.interface`: the file-interface contract (the primitives);
- :mod:`~pylaw.target.remote.gfal`: its GFAL2 implementation, the one place where
  ``gfal2.GError`` is mapped to :mod:`pylaw.errors`;
- :mod:`~pylaw.target.remote.filesystem`: a storage element (base URLs with fallback,
  retries, atomic transfers), configured in :mod:`~pylaw.target.remote.config`;
- :mod:`~pylaw.target.remote.cache`: the optional local cache;
- :mod:`~pylaw.target.remote.checksum`: checksums computed while data streams by, compared
  with the ones the storage reports;
- :mod:`~pylaw.target.remote.transfer`: batch transfers;
- :mod:`~pylaw.target.remote.target`: the targets tasks use.

Importing this package does not import ``gfal2``; the first remote operation does.
"""

from pylaw.target.remote.cache import RemoteCache
from pylaw.target.remote.config import StorageConfig, read_storage_config
from pylaw.target.remote.filesystem import RemoteFileSystem
from pylaw.target.remote.interface import FileInterface, RemoteStat
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
    "DCacheDirectoryTarget", "DCacheTarget", "FileInterface", "RemoteCache", "RemoteDirectoryTarget",
    "RemoteFileSystem", "RemoteFileTarget", "RemoteStat", "RetryPolicy", "StorageConfig", "TransferResult",
    "copy_many", "fetch", "get_filesystem", "read_storage_config", "register_filesystem", "upload",
]
