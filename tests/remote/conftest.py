"""Fixtures of the remote-target tests: one storage element per real backend.

``backend`` runs a test on every backend: ``file`` (gfal2's file plugin), ``root`` (a real
xrootd through gfal2), ``xrdcl`` (the same xrootd through XRootD's own client, pylaw's
``interface = xrootd``), ``dav`` (a real wsgidav through gfal2's http plugin), ``nginx``
(nginx's WebDAV modules, a fast server like dCache's door, through the same plugin) and
``davs`` (that nginx over TLS, trusted through ``X509_CERT_DIR``, as dCache's doors are used). Each test gets a fresh
directory on the server as the base of its storage element. Two more need no server and
no client library: ``local`` (pylaw's os-module interface on file://) and ``memory``
(the in-memory interface); :data:`SERVERLESS` tests run on them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pylaw.target.remote.filesystem import RemoteFileSystem
from pylaw.target.remote.gfal import GFALInterface
from pylaw.target.remote.interface import FileInterface, ReadHandle, RemoteStat
from pylaw.target.remote.local import LocalInterface
from pylaw.target.remote.memory import MemoryInterface
from pylaw.target.remote.retry import RetryPolicy
from pylaw.target.remote.target import forget_filesystems, register_filesystem
from pylaw.target.remote.xrootd import XRootDInterface
from tests.services._process import unavailable
from tests.services.nginx_webdav import (  # noqa: F401 - fixtures
    NginxWebDAVServer,
    nginx_webdav_server,
    nginx_webdavs_server,
)
from tests.services.webdav import WebDAVServer, webdav_server  # noqa: F401 - fixture
from tests.services.xrootd import XRootDServer, xrootd_server  # noqa: F401 - fixture

BACKENDS = ("file", "root", "xrdcl", "dav", "nginx", "davs")
#: backends without a server or client library
SERVERLESS = ("local", "memory")
CONTRACT_BACKENDS = BACKENDS + SERVERLESS
SERVER_FIXTURES = {"root": "xrootd_server", "xrdcl": "xrootd_server", "dav": "webdav_server",
                   "nginx": "nginx_webdav_server", "davs": "nginx_webdavs_server"}
FAST_RETRY = RetryPolicy(attempts=3, delay=0.01, max_delay=0.05, timeout=20)


@pytest.fixture(scope="session")
def gfal2_module() -> Any:
    try:
        import gfal2
    except ImportError:
        unavailable("the gfal2 Python bindings are not importable: run tests/services/install_remote.sh VENV")
    return gfal2


@pytest.fixture(scope="session")
def xrootd_bindings() -> Any:
    try:
        from XRootD import client
    except ImportError:
        unavailable("the XRootD Python bindings are not importable: run tests/services/install_remote.sh VENV")
    return client


def interface_for(backend: str) -> FileInterface:
    """The file interface a backend's storage elements use."""
    return {"xrdcl": XRootDInterface, "local": LocalInterface, "memory": MemoryInterface}.get(
        backend, GFALInterface)()


class CountingInterface(FileInterface):
    """The real interface, counting the calls per primitive (to assert 'one listing per directory')."""

    def __init__(self, inner: FileInterface) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def stat(self, url: str, timeout: float | None = None) -> RemoteStat:
        self._count("stat")
        return self.inner.stat(url, timeout)

    def listdir(self, url: str, timeout: float | None = None) -> list[str]:
        self._count("listdir")
        return self.inner.listdir(url, timeout)

    def listdir_stat(self, url: str, timeout: float | None = None) -> dict[str, RemoteStat]:
        self._count("listdir_stat")
        return self.inner.listdir_stat(url, timeout)

    def mkdir(self, url: str, parents: bool = True, timeout: float | None = None) -> None:
        self._count("mkdir")
        self.inner.mkdir(url, parents, timeout)

    def unlink(self, url: str, timeout: float | None = None) -> None:
        self._count("unlink")
        self.inner.unlink(url, timeout)

    def rmdir(self, url: str, timeout: float | None = None) -> None:
        self._count("rmdir")
        self.inner.rmdir(url, timeout)

    def rename(self, source: str, destination: str, timeout: float | None = None) -> None:
        self._count("rename")
        self.inner.rename(source, destination, timeout)

    def copy(self, source: str, destination: str, overwrite: bool = True,
             timeout: float | None = None) -> None:
        self._count("copy")
        self.inner.copy(source, destination, overwrite, timeout)

    def checksum(self, url: str, algorithm: str, timeout: float | None = None) -> str | None:
        self._count("checksum")
        return self.inner.checksum(url, algorithm, timeout)

    def rmdir_is_recursive(self, url: str) -> bool:
        return self.inner.rmdir_is_recursive(url)

    def open_read(self, url: str, timeout: float | None = None) -> ReadHandle:
        self._count("open_read")
        return self.inner.open_read(url, timeout)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def base_url_for(request: pytest.FixtureRequest, tmp_path: Any) -> Callable[[str], str]:
    """A function giving a fresh, existing base URL on the named backend."""

    def make(backend: str) -> str:
        unique = uuid.uuid4().hex[:10]
        if backend == "memory":
            url = f"memory://test-{unique}/base"
            MemoryInterface().mkdir(url)
            return url
        if backend != "local":
            request.getfixturevalue("gfal2_module")
        if backend in ("file", "local"):
            directory = tmp_path / f"file-{unique}"
            directory.mkdir()
            return f"file://{directory}"
        server: XRootDServer | WebDAVServer | NginxWebDAVServer = request.getfixturevalue(SERVER_FIXTURES[backend])
        if isinstance(server, NginxWebDAVServer) and server.tls:
            monkeypatch = request.getfixturevalue("monkeypatch")
            monkeypatch.setenv("X509_CERT_DIR", server.ca_dir)  # davix trusts the CAs there
            # without OpenSSL's system bundle, parsed by davix for every request (docs: 40 ms each)
            monkeypatch.setenv("SSL_CERT_FILE", os.devnull)
        url = f"{server.url}/{unique}"
        GFALInterface().mkdir(url)
        return url

    return make


@pytest.fixture
def make_fs(request: pytest.FixtureRequest,
            base_url_for: Callable[[str], str]) -> Iterator[Callable[..., RemoteFileSystem]]:
    """Build (and register) a storage element on a backend; ``counting=True`` wraps the interface."""

    def make(backend: str, name: str | None = None, counting: bool = False,
             **kwargs: Any) -> RemoteFileSystem:
        if backend == "xrdcl":
            request.getfixturevalue("xrootd_bindings")
        interface = interface_for(backend)
        if counting:
            interface = CountingInterface(interface)
        kwargs.setdefault("retry", FAST_RETRY)
        fs = RemoteFileSystem(name or f"test-{backend}", [base_url_for(backend)], interface, **kwargs)
        register_filesystem(fs)
        return fs

    yield make
    forget_filesystems()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fs(make_fs: Callable[..., RemoteFileSystem], backend: str) -> RemoteFileSystem:
    """A fresh storage element on each backend in turn."""
    return make_fs(backend)
