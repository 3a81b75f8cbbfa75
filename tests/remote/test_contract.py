"""Every built-in interface runs the shipped contract suite (:mod:`pylaw.target.remote.contract`).

Real servers behind the real clients: gfal2 on file://, on root:// (xrootd), on dav://
(wsgidav and nginx) and on davs:// (nginx over TLS), XRootD's own client on root://; and
the two interfaces that need no server, ``local`` (file:// with the os module) and
``memory``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pylaw.target.remote.contract import FileSystemContract
from pylaw.target.remote.filesystem import RemoteFileSystem
from tests.remote.conftest import CONTRACT_BACKENDS


class TestContract(FileSystemContract):
    @pytest.fixture(params=CONTRACT_BACKENDS)
    def fs(self, request: pytest.FixtureRequest, make_fs: Callable[..., RemoteFileSystem]) -> RemoteFileSystem:
        return make_fs(str(request.param))
