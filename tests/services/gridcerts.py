"""A throw-away certificate authority and X.509 proxies minted by the real grid tools.

Tests of grid credentials need real proxies: valid, too short, expired, with and without
a VOMS attribute certificate. ``openssl`` makes a CA and user certificates in a
temporary directory (never ``/etc/grid-security``), ``arcproxy`` (nordugrid-arc-client)
makes RFC 3820 proxies from them with any validity window, and ``voms-proxy-fake``
(voms-clients) adds a VOMS attribute certificate signed by a test VOMS host, as a VOMS
server would (no VOMS server runs here). tests/services/install_arc.sh installs both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from tests.services._process import unavailable

TOOLS = ("openssl", "arcproxy", "voms-proxy-fake")
_EXTENSIONS = ("subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\nbasicConstraints=CA:FALSE\n"
               "keyUsage=critical,digitalSignature,keyEncipherment\n")


def require_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not installed (run tests/services/install_arc.sh)")


class TestCA:
    """A CA in ``directory`` issuing user and host certificates; its hashed certificate dir is ``certdir``."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.certdir = self.dir / "certificates"
        self.certdir.mkdir(parents=True, exist_ok=True)
        self.home = self.dir / "home"  # arcproxy writes ~/.arc/client.conf: never the real HOME
        self.home.mkdir(exist_ok=True)
        self.key, self.cert = self.dir / "ca.key", self.dir / "ca.pem"
        self._run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key, "-out", self.cert,
                  "-days", "30", "-subj", "/DC=org/DC=pylaw-test/CN=pylaw test CA",
                  "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        shutil.copy(self.cert, self.certdir / "pylaw-test-ca.pem")
        self._run("openssl", "rehash", self.certdir)

    def env(self) -> dict[str, str]:
        return {**os.environ, "X509_CERT_DIR": str(self.certdir), "HOME": str(self.home)}

    def _run(self, *argv: object) -> str:
        proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=self.env(), check=False,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        return proc.stdout

    def issue(self, name: str, cn: str, days: int = 10, host: bool = False) -> tuple[Path, Path]:
        """(certificate, key) of a new end-entity certificate ``/DC=org/DC=pylaw-test/CN=<cn>``.

        A ``host`` certificate names ``cn`` as its DNS name too (TLS clients check it).
        """
        cert, key, csr = (self.dir / f"{name}-cert.pem", self.dir / f"{name}-key.pem", self.dir / f"{name}.csr")
        extensions = self.dir / f"{name}.cnf"
        extensions.write_text(_EXTENSIONS + (f"subjectAltName=DNS:{cn}\nextendedKeyUsage=serverAuth,clientAuth\n"
                                             if host else ""))
        self._run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                  "-subj", f"/DC=org/DC=pylaw-test/CN={cn}")
        self._run("openssl", "x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-CAcreateserial",
                  "-out", cert, "-days", str(days), "-extfile", extensions)
        key.chmod(0o400)
        return cert, key

    def proxy(self, user: tuple[Path, Path], out: Path, *, seconds: int = 0,
              start: datetime | None = None, end: datetime | None = None) -> Path:
        """An RFC proxy of ``user`` from arcproxy: valid ``seconds`` from now, or from ``start`` to ``end``."""
        constraints = [f"validityPeriod={seconds}"] if seconds else [
            f"validityStart={_iso(start)}", f"validityEnd={_iso(end)}"]
        argv: list[object] = ["arcproxy", "-C", user[0], "-K", user[1], "-P", out]
        for constraint in constraints:
            argv += ["-c", constraint]
        self._run(*argv)
        return out

    def voms_proxy(self, user: tuple[Path, Path], voms_host: tuple[Path, Path], out: Path, vo: str,
                   hours: int, ac_hours: int) -> Path:
        """A proxy of ``user`` valid ``hours`` with an AC for ``vo`` valid ``ac_hours``, from voms-proxy-fake."""
        self._run("voms-proxy-fake", "-q", "-rfc", "-cert", user[0], "-key", user[1], "-hostcert", voms_host[0],
                  "-hostkey", voms_host[1], "-voms", vo, "-fqan", f"/{vo}/Role=NULL/Capability=NULL",
                  "-uri", "voms.pylaw.test:15000", "-hours", str(hours), "-vomslife", str(ac_hours),
                  "-certdir", self.certdir, "-out", out)
        return out


def certificate_end(pem: str) -> float:
    """notAfter of the first certificate in ``pem``, read by openssl (the tests' own reference)."""
    proc = subprocess.run(["openssl", "x509", "-noout", "-enddate"], input=pem, capture_output=True, text=True,
                          check=True)
    value = " ".join(proc.stdout.strip().split("=", 1)[1].split())
    return datetime.strptime(value, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc).timestamp()


def _iso(moment: datetime | None) -> str:
    assert moment is not None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
