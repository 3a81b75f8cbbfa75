"""davs:// in a lean-TLS agent: the same trust, the same answers, and the user's process untouched.

Each test builds its own "system" CA store (a bundle, and a directory of hash-named
copies, as Debian's ``update-ca-certificates`` keeps them) with the ``openssl`` command,
and points ``SSL_CERT_FILE``/``SSL_CERT_DIR`` at it.
"""

from __future__ import annotations

import io
import os
import random
import subprocess

import pytest

from pylaw.errors import RemoteCertificateError
from pylaw.target.remote import agent as agents
from pylaw.target.remote import tls
from pylaw.target.remote.contract import pattern
from pylaw.target.remote.filesystem import RemoteFileSystem
from pylaw.target.remote.gfal import GFALInterface
from tests.remote.readops import random_read_answers

BLOCK = 32 << 10


def _certificate(directory, name: str) -> str:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", f"/CN={name}", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert.read_text()


def _hash_name(pem: str) -> str:
    return subprocess.run(["openssl", "x509", "-noout", "-subject_hash"], input=pem, check=True,
                          capture_output=True, text=True).stdout.strip()


def _store(tmp_path, pems: list[str], in_directory: list[str], monkeypatch, name: str = "store") -> None:
    """``SSL_CERT_FILE`` = a bundle of ``pems``; ``SSL_CERT_DIR`` = hash-named copies of ``in_directory``."""
    root = tmp_path / name
    directory = root / "certs"
    directory.mkdir(parents=True)
    (root / "bundle.pem").write_text("".join(pems))
    for pem in in_directory:
        (directory / f"{_hash_name(pem)}.0").write_text(pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(root / "bundle.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(directory))
    monkeypatch.delenv(tls.OPT_OUT_ENV, raising=False)
    tls._lean_environment.cache_clear()


def test_lean_only_when_the_directory_holds_every_certificate_of_the_bundle(tmp_path, monkeypatch) -> None:
    made = tmp_path / "made"
    made.mkdir()
    a, b, c = (_certificate(made, n) for n in "abc")
    _store(tmp_path, [a, b, c], [a, b, c], monkeypatch, "all")
    assert tls.lean_ca_environment() == {"SSL_CERT_FILE": os.devnull, "SSL_CERT_DIR": str(tmp_path / "all/certs")}
    _store(tmp_path, [a, b, c], [a, b], monkeypatch, "one-missing")
    assert tls.lean_ca_environment() is None  # emptying the bundle would drop trust in c
    _store(tmp_path, [a], [], monkeypatch, "misnamed")
    (tmp_path / "misnamed/certs/a.pem").write_text(a)  # OpenSSL's lookup opens hash names only
    assert tls.lean_ca_environment() is None
    _store(tmp_path, [], [a], monkeypatch, "no-bundle")
    assert tls.lean_ca_environment() is None  # nothing parsed per request: nothing to gain
    _store(tmp_path, [a, b], [a, b, c], monkeypatch, "superset")
    assert tls.lean_ca_environment() is not None
    monkeypatch.setenv(tls.OPT_OUT_ENV, "0")
    assert tls.lean_ca_environment() is None


@pytest.fixture
def davs(request, tmp_path, monkeypatch):
    """The test suite's nginx over TLS, its CA in a 'system' store (not in X509_CERT_DIR), and a fresh base."""
    server = request.getfixturevalue("nginx_webdavs_server")
    made = tmp_path / "made"
    made.mkdir()
    ca = (tmp_path / "ca.pem")
    ca_name = next(n for n in os.listdir(server.ca_dir) if n.endswith(".0"))
    with open(os.path.join(server.ca_dir, ca_name)) as f:
        ca.write_text(f.read())
    others = [_certificate(made, n) for n in ("x", "y")]
    empty_grid_dir = tmp_path / "grid-certificates"
    empty_grid_dir.mkdir()
    monkeypatch.setenv("X509_CERT_DIR", str(empty_grid_dir))
    return server, ca.read_text(), others


def test_davs_runs_in_a_lean_agent_with_the_same_answers(davs, tmp_path, monkeypatch) -> None:
    server, ca, others = davs
    _store(tmp_path, [ca, *others], [ca, *others], monkeypatch)
    url = f"{server.url}/lean-{os.getpid()}"
    plain = GFALInterface()
    monkeypatch.setenv(tls.OPT_OUT_ENV, "0")
    plain.mkdir(url)
    plain.mkdir(f"{url}/sub")
    in_process = (plain.listdir(url), plain.stat(f"{url}/sub").is_dir, plain.exists(f"{url}/nope"))
    monkeypatch.delenv(tls.OPT_OUT_ENV)
    lean = tls.lean_ca_environment()
    assert lean is not None
    through_agent = (plain.listdir(url), plain.stat(f"{url}/sub").is_dir, plain.exists(f"{url}/nope"))
    assert through_agent == in_process == (["sub"], True, False)
    (agent,) = agents.pool(lean).idle
    with open(f"/proc/{agent.pid}/environ", "rb") as f:
        environ = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    assert environ[b"SSL_CERT_FILE"] == os.devnull.encode()
    assert os.environ["SSL_CERT_FILE"] == str(tmp_path / "store/bundle.pem")  # this process: unchanged


def test_davs_streams_through_the_lean_agent(davs, tmp_path, monkeypatch) -> None:
    """open("rb") over davs:// with lean TLS reads blocks in the agent: the answers of the same file read
    in process, and no download."""
    server, ca, others = davs
    _store(tmp_path, [ca, *others], [ca, *others], monkeypatch)
    data = b"".join(pattern(random.Random(i).randrange(1, 3 * BLOCK), seed=i) + b"\n" for i in range(12))
    (tmp_path / "r.bin").write_bytes(data)
    lean = tls.lean_ca_environment()
    assert lean is not None
    fs = RemoteFileSystem("stream-lean", [f"{server.url}/stream-{os.getpid()}"], GFALInterface())
    fs.put(str(tmp_path / "r.bin"), "/r.bin")
    downloads = []
    monkeypatch.setattr(fs, "get", lambda *args, **kwargs: downloads.append(args))
    handle = fs.interface.open_read(fs.url("/r.bin"))
    assert isinstance(handle, agents.AgentReadHandle)
    with fs.open("/r.bin", "rb", block_size=BLOCK) as f:
        through_agent = random_read_answers(f, len(data), BLOCK)
    monkeypatch.setenv(tls.OPT_OUT_ENV, "0")
    with fs.open("/r.bin", "rb", block_size=BLOCK) as f:
        assert not isinstance(f.raw.handle, agents.AgentReadHandle)
        in_process = random_read_answers(f, len(data), BLOCK)
    assert through_agent == in_process == random_read_answers(io.BytesIO(data), len(data), BLOCK)
    assert downloads == []


@pytest.mark.parametrize("lean", [True, False])
def test_trust_is_the_same_in_the_agent(davs, tmp_path, monkeypatch, lean) -> None:
    """The server's CA only in the system store: trusted either way; in neither store: refused either way."""
    server, ca, others = davs
    _store(tmp_path, [ca, *others], [ca, *others], monkeypatch, "trusting")
    if not lean:
        monkeypatch.setenv(tls.OPT_OUT_ENV, "0")
    fs = RemoteFileSystem(f"trust-{lean}", [server.url], GFALInterface())
    fs.mkdir(f"trust-{lean}-{os.getpid()}")
    assert bool(agents.pool(tls.lean_ca_environment() or {}).idle) == lean
    _store(tmp_path, others, others, monkeypatch, "not-trusting")
    if not lean:
        monkeypatch.setenv(tls.OPT_OUT_ENV, "0")
    fresh = RemoteFileSystem(f"trust-{lean}-fresh", [server.url], GFALInterface())  # no kept-alive session
    with pytest.raises(RemoteCertificateError):
        fresh.stat("/")
