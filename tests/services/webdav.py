"""A real WebDAV server (wsgidav + cheroot from pip) on 127.0.0.1, reached by gfal2's http plugin.

wsgidav is a complete class-2 WebDAV server and, like dCache's WebDAV door, deletes a
non-empty collection recursively. It runs in its own process (``python -m wsgidav``
through the CLI entry point) on a free port, anonymously, over plain HTTP: URLs are
``dav://127.0.0.1:PORT/pylaw/...``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.services._process import TempDirServer, running, wait_for_port

LAUNCHER = "import sys; from wsgidav.server.server_cli import run; sys.argv[0] = 'wsgidav'; run()"


class WebDAVServer(TempDirServer):
    """One wsgidav process serving a temporary directory; ``url`` is the writable base URL."""

    prefix = "pylaw-webdav-"
    url_format = "dav://127.0.0.1:{port}/pylaw"

    def start(self) -> WebDAVServer:
        try:
            import cheroot  # noqa: F401
            import wsgidav  # noqa: F401
        except ImportError as exc:
            raise FileNotFoundError(f"{exc}: run tests/services/install_remote.sh VENV") from exc
        os.makedirs(os.path.join(self.data, "pylaw"), exist_ok=True)
        command = [sys.executable, "-c", LAUNCHER, "--host", "127.0.0.1", "--port", str(self.port),
                   "--root", self.data, "--auth", "anonymous", "--no-config", "-q"]
        out = open(os.path.join(self.root, "wsgidav.out"), "wb")  # noqa: SIM115
        self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        wait_for_port(self.port, self.process, "wsgidav")
        return self


@pytest.fixture(scope="session")
def webdav_server() -> Iterator[WebDAVServer]:
    """A running wsgidav for the whole session; skipped (or failed in CI) when unavailable."""
    yield from running(WebDAVServer(), "the WebDAV server")
