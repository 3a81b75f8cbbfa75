"""Helpers shared by the service fixtures: free ports, readiness probes, "required" policy."""

from __future__ import annotations

import os
import socket
import subprocess
import time

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
