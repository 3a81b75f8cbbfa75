"""The CREAM CLI double on PATH for a test, its records, and fake proxies made with openssl.

:class:`CreamDouble` reads the double's own state (``jobs/<n>/job.json``, ``delegations.json``,
``calls.jsonl``): tests assert from it as they would from a CE's job list.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin")
TERMINAL = ("DONE-OK", "DONE-FAILED", "CANCELLED", "ABORTED")
#: the CE id of the double in the tests; ".invalid" resolves nowhere (RFC 2606)
ENDPOINT = "cream-double.invalid:8443/cream-fork-double"

CA_CONFIG = """[ ca ]
default_ca = fake
[ fake ]
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = any
[ any ]
commonName = supplied
"""


def make_proxy(path: str, *, start: str = "", end: str = "", hours: int = 24) -> str:
    """A fake X.509 proxy file (certificate, private key and a marker line); returns the marker (the secret).

    ``start``/``end`` (``YYYYMMDDHHMMSSZ``) give exact validity dates (an expired proxy),
    else it is valid for ``hours`` from now.
    """
    secret = f"PYLAW-FAKE-PROXY-SECRET-{secrets.token_hex(16)}"
    work = f"{path}.d"
    os.makedirs(work, exist_ok=True)
    key, csr, cert = (os.path.join(work, name) for name in ("key.pem", "req.pem", "cert.pem"))
    run = lambda *argv: subprocess.run(argv, check=True, capture_output=True, cwd=work)  # noqa: E731
    if not (start or end):
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
            "-subj", "/CN=pylaw test proxy", "-days", "1")
        if hours != 24:
            raise ValueError("without start/end a fake proxy lives 24 h")
    else:
        Path(work, "index.txt").write_text("")
        Path(work, "serial").write_text("01\n")
        Path(work, "ca.cnf").write_text(CA_CONFIG.format(dir=work))
        run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=pylaw test proxy")
        run("openssl", "ca", "-config", "ca.cnf", "-batch", "-selfsign", "-keyfile", key, "-in", csr,
            "-out", cert, "-notext", "-startdate", start, "-enddate", end)
    with open(path, "w") as f:
        f.write(Path(cert).read_text() + f"# {secret}\n" + Path(key).read_text())
    os.chmod(path, 0o600)
    return secret


class CreamDouble:
    """One double's state directory, environment and records."""

    def __init__(self, state: str, proxy: str, secret: str) -> None:
        self.state, self.proxy, self.secret = state, proxy, secret
        self.endpoint = ENDPOINT

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "CREAM_DOUBLE_STATE": self.state,
                "CREAM_DOUBLE_PYTHON": sys.executable, "X509_USER_PROXY": self.proxy}

    def jobs(self) -> list[dict[str, Any]]:
        found = []
        for path in glob.glob(os.path.join(self.state, "jobs", "*", "job.json")):
            with open(path) as f:
                found.append(json.load(f))
        return sorted(found, key=lambda job: job["number"])

    def delegations(self) -> dict[str, Any]:
        try:
            with open(os.path.join(self.state, "delegations.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def forget_delegations(self) -> None:
        """What a CE does when delegations expire or its database is cleaned."""
        path = os.path.join(self.state, "delegations.json")
        if os.path.exists(path):
            os.unlink(path)

    def calls(self, command: str = "") -> list[dict[str, Any]]:
        try:
            with open(os.path.join(self.state, "calls.jsonl")) as f:
                calls = [json.loads(line) for line in f]
        except FileNotFoundError:
            return []
        return [call for call in calls if not command or call["command"] == command]

    def live_groups(self) -> list[int]:
        """Process groups of jobs that still have a process."""
        alive = []
        for job in self.jobs():
            if job.get("pgid"):
                try:
                    os.killpg(job["pgid"], 0)
                    alive.append(job["pgid"])
                except (ProcessLookupError, PermissionError):
                    pass
        return alive

    def stop(self) -> None:
        """Kill what the double's jobs left running (the test's own processes, by group)."""
        for group in self.live_groups():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)

    def wait_for(self, condition: Any, timeout: float = 60, what: str = "the double") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def cream_double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CreamDouble]:
    """The double first on PATH, a fresh state directory and a valid fake proxy (``X509_USER_PROXY``)."""
    state = tmp_path / "cream-double-state"
    state.mkdir()
    proxy = str(tmp_path / "x509up_fake")
    double = CreamDouble(str(state), proxy, make_proxy(proxy))
    for key, value in double.env.items():
        monkeypatch.setenv(key, value)
    yield double
    double.stop()
