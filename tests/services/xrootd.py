"""A real XRootD server (Debian ``xrootd-server``) on 127.0.0.1 for tests and benchmarks.

The server exports a fresh temporary directory, without authentication and writable, on a
free port; URLs look like ``root://127.0.0.1:PORT//<export>/...``. xrootd drops its
privileges to the ``xrootd`` user when started as root, so the data, admin and log
directories are handed to that user. It reports adler32 and md5 checksums (``xrootd.chksum``)
unless started with other ``checksums`` (none: the server answers checksum queries with
"not supported").
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.services._process import TempDirServer, running, wait_for_port

CONFIG = """\
xrd.port {port}
xrd.allow host localhost
xrd.allow host 127.0.0.1
all.adminpath {root}/admin
all.pidpath {root}/run
oss.localroot {root}/data
all.export /
{checksums}"""


class XRootDServer(TempDirServer):
    """One xrootd process serving ``<root>/data`` as ``/``; ``url`` is the writable base URL."""

    prefix = "pylaw-xrootd-"
    url_format = "root://127.0.0.1:{port}//pylaw"

    def __init__(self, port: int | None = None, checksums: tuple[str, ...] = ("adler32", "md5")) -> None:
        super().__init__(port)
        self.checksums = checksums

    def start(self) -> XRootDServer:
        binary = shutil.which("xrootd")
        if binary is None:
            raise FileNotFoundError("xrootd is not installed: run tests/services/install_remote.sh VENV")
        for sub in ("data/pylaw", "admin", "run", "logs"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        config = os.path.join(self.root, "xrootd.cfg")
        with open(config, "w") as f:
            # beyond `max` concurrent computations (default: a few) xrootd makes a client wait
            # (measured: one query of a batch upload took 30 s); allow a batch's parallel queries
            checksums = f"xrootd.chksum max 32 {' '.join(self.checksums)}\n" if self.checksums else ""
            f.write(CONFIG.format(port=self.port, root=self.root, checksums=checksums))
        command = [binary, "-c", config, "-l", os.path.join(self.root, "logs", "xrootd.log")]
        if os.geteuid() == 0:
            self._give_to("xrootd")
            command += ["-R", "xrootd"]
        out = open(os.path.join(self.root, "logs", "xrootd.out"), "wb")  # noqa: SIM115
        self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=self.root)
        out.close()
        wait_for_port(self.port, self.process, "xrootd")
        return self

    def _give_to(self, user: str) -> None:
        entry = pwd.getpwnam(user)
        os.chmod(self.root, 0o755)
        for directory, dirs, files in os.walk(self.root):
            for name in [directory, *(os.path.join(directory, n) for n in dirs + files)]:
                os.chown(name, entry.pw_uid, entry.pw_gid)


def client_environment() -> None:
    """Make the XrdCl client give up quickly instead of retrying a dead port for minutes."""
    os.environ.setdefault("XRD_CONNECTIONRETRY", "1")
    os.environ.setdefault("XRD_REQUESTTIMEOUT", "10")
    os.environ.setdefault("XRD_STREAMTIMEOUT", "10")
    os.environ.setdefault("XRD_STREAMERRORWINDOW", "0")


@pytest.fixture(scope="session")
def xrootd_server() -> Iterator[XRootDServer]:
    """A running xrootd for the whole session; skipped (or failed in CI) when unavailable."""
    client_environment()
    yield from running(XRootDServer(), "xrootd", errors=(OSError, RuntimeError, KeyError))
