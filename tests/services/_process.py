"""Helpers shared by the service fixtures: free ports, readiness probes, "required" policy."""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

REQUIRE_ENV = "PYLAW_REQUIRE_SERVICES"


def services_required() -> bool:
    """In CI (``PYLAW_REQUIRE_SERVICES=1``) a missing service fails the run instead of skipping."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip the test, or fail it when services are required."""
    if services_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set, so this is a failure, not a skip)")
    pytest.skip(reason)


def require_module(name: str) -> Any:
    """Import ``name`` for a test module: skip the module without it, or fail when services are required."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if services_required():
            pytest.fail(f"{name} is not importable: {exc} ({REQUIRE_ENV} is set, so this is a failure, "
                        f"not a skip)", pytrace=False)
        pytest.skip(f"{name} is not importable: {exc}", allow_module_level=True)


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 15.0) -> None:
    """Block until ``port`` accepts connections; raise with the server's log if it dies or stalls.

    Probing the port ourselves matters for xrootd: its client retries for minutes against a
    port that is not listening yet.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def stop_process(process: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """Terminate one process we started (by its handle, never by name)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


class TempDirServer:
    """A storage server on a free 127.0.0.1 port, serving ``<root>/data`` from a temp dir.

    Subclasses set ``prefix`` and ``url_format`` and implement ``start()``; the tests may
    inspect the real files through ``local_path()``.
    """

    prefix = "pylaw-server-"
    url_format = ""  # e.g. "root://127.0.0.1:{port}//pylaw"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.root = tempfile.mkdtemp(prefix=self.prefix)
        self.data = os.path.join(self.root, "data")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.url_format.format(port=self.port)

    def local_path(self, path: str = "") -> str:
        """Where a path under ``url`` lives on disk."""
        return os.path.join(self.data, "pylaw", path.lstrip("/"))

    def start(self) -> TempDirServer:
        raise NotImplementedError

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)


def running(server: TempDirServer, what: str, errors: tuple[type[BaseException], ...] = (OSError, RuntimeError)
            ) -> Iterator[TempDirServer]:
    """Body of a session fixture: start ``server``, yield it, stop it; unavailable if it won't start."""
    try:
        server.start()
    except errors as exc:
        server.stop()
        unavailable(f"cannot start {what}: {exc}")
    yield server
    server.stop()
