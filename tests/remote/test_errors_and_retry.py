"""GError mapping, the retry policy, and base-URL fallback against real servers."""

from __future__ import annotations

import errno
import os
import pickle
import random
import subprocess
import sys

import pytest

from pylaw.errors import (
    RemoteBackendMissingError,
    RemoteCertificateError,
    RemoteConnectionError,
    RemoteDirectoryNotEmptyError,
    RemoteError,
    RemoteFileNotFoundError,
    RemoteNotADirectoryError,
    RemoteNotSupportedError,
    RemotePermissionError,
    RemoteTimeoutError,
    StorageConfigError,
    TransientRemoteError,
)
from pylaw.target.remote.filesystem import RemoteFileSystem
from pylaw.target.remote.gfal import GFALInterface, map_gerror
from pylaw.target.remote.interface import redact
from pylaw.target.remote.retry import RetryPolicy
from pylaw.target.remote.xrootd import XRootDInterface
from tests.remote.conftest import CountingInterface
from tests.services._process import free_port


@pytest.mark.parametrize(("code", "message", "expected"), [
    (errno.ENOENT, "Failed to stat file (No such file or directory)", RemoteFileNotFoundError),
    (errno.EACCES, "Permission denied", RemotePermissionError),
    (errno.ENODEV, "Failed to delete directory (No such device)", RemoteDirectoryNotEmptyError),
    (84, "Not a directory (Not a directory)", RemoteNotADirectoryError),  # xrootd's listdir of a file
    (errno.ECONNREFUSED, "Failed to stat file (Connection refused)", RemoteConnectionError),
    (errno.EHOSTDOWN, "Result Could not connect to server after 1 attempts", RemoteConnectionError),
    (errno.ETIMEDOUT, "Operation expired", RemoteTimeoutError),
    (errno.EIO, "Result HTTP 500 : Internal Server Error", TransientRemoteError),
    (errno.EINVAL, "something odd", RemoteError),
])
def test_gerror_mapping(gfal2_module, code, message, expected) -> None:
    url = "root://user:S3CR3T@host//a?authz=TOKEN123"
    error = map_gerror(gfal2_module.GError(f"{message} on {url}", code), "stat", url)
    assert type(error) is expected
    assert error.code == code and error.operation == "stat"
    for secret in ("S3CR3T", "TOKEN123"):
        assert secret not in str(error) and secret not in error.url
    assert "gfal2 stat failed for root://<redacted>@host//a" in str(error)
    assert issubclass(expected, TransientRemoteError) == isinstance(error, TransientRemoteError)


def test_redact_keeps_plain_urls() -> None:
    assert redact("davs://door:2880/pnfs/a") == "davs://door:2880/pnfs/a"


def test_backoff_grows_is_capped_and_jittered() -> None:
    policy = RetryPolicy(attempts=6, delay=1.0, max_delay=4.0, jitter=0.5)
    rng = random.Random(1)
    assert policy.backoff(1) == 0.0
    for attempt, base in [(2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0)]:
        delays = [policy.backoff(attempt, rng) for _ in range(50)]
        assert all(0.5 * base <= d <= 1.5 * base for d in delays)
        assert len(set(delays)) > 1
    with pytest.raises(StorageConfigError):
        RetryPolicy(attempts=0)


def dead_url() -> str:
    return f"root://127.0.0.1:{free_port()}//nothing"


def test_fallback_to_the_next_base(base_url_for, tmp_path) -> None:
    sleeps: list[float] = []
    live = base_url_for("root")
    fs = RemoteFileSystem("fallback", [dead_url(), live], GFALInterface(), RetryPolicy(attempts=2, delay=0.01),
                          sleep=sleeps.append)
    local = tmp_path / "x"
    local.write_text("x")
    fs.put(str(local), "/f/x")
    assert fs.listdir("/f") == ["x"]
    assert sleeps == []  # the second base answered within the first round


def test_transient_errors_are_retried_then_raised_clearly(gfal2_module) -> None:
    sleeps: list[float] = []
    fs = RemoteFileSystem("dead", [dead_url()], GFALInterface(),
                          RetryPolicy(attempts=3, delay=0.01, jitter=0.0), sleep=sleeps.append)
    with pytest.raises(RemoteConnectionError, match=r"stat of '/a' on storage element 'dead' failed 3 time"):
        fs.stat("/a")
    assert sleeps == [0.01, 0.02]


def test_non_transient_errors_are_not_retried(make_fs) -> None:
    sleeps: list[float] = []
    fs = make_fs("root", counting=True, sleep=sleeps.append)
    with pytest.raises(RemoteFileNotFoundError):
        fs.stat("/missing")
    assert fs.interface.calls == {"stat": 1} and sleeps == []


def test_operation_bases_override(make_fs, base_url_for) -> None:
    fs = make_fs("root")
    other = base_url_for("dav")
    fs.operation_bases = {"listdir": (other,)}
    fs.mkdir("/only-on-root")
    assert fs.exists("/only-on-root")
    assert "only-on-root" not in fs.listdir("/")


def test_missing_gfal2_gives_an_install_hint(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gfal2", None)  # what `import gfal2` sees when it is not installed
    with pytest.raises(RemoteBackendMissingError, match="apt-get install python3-gfal2") as info:
        GFALInterface().stat("root://127.0.0.1:1//a")
    assert isinstance(info.value, ImportError)


def test_importing_pylaw_remote_imports_no_backend_library() -> None:
    code = "import sys, pylaw.target.remote; assert 'gfal2' not in sys.modules and 'XRootD' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_xrootd_interface_maps_a_dead_server_to_a_retried_connection_error(xrootd_bindings) -> None:
    sleeps: list[float] = []
    fs = RemoteFileSystem("dead-xrdcl", [dead_url()], XRootDInterface(),
                          RetryPolicy(attempts=2, delay=0.01, jitter=0.0), sleep=sleeps.append)
    with pytest.raises(RemoteConnectionError, match=r"xrootd stat failed .*Connection error") as info:
        fs.stat("/a")
    assert isinstance(info.value, ConnectionError) and sleeps == [0.01]


def test_xrootd_interface_applies_pylaw_client_settings_after_gfal2_loaded_xrdcl(xrootd_bindings) -> None:
    # GFAL2's xrootd plugin initialises XrdCl first, before pylaw exported its XRD_* values;
    # XrdCl would then refuse a server for 30 minutes after one socket error
    code = ("import gfal2, os; gfal2.creat_context()\n"
            "from pylaw.target.remote.xrootd import import_xrootd\n"
            "client = import_xrootd()\n"
            "print(os.environ['XRD_STREAMERRORWINDOW'], client.EnvGetInt('StreamErrorWindow'))")
    env = {key: value for key, value in os.environ.items() if not key.startswith("XRD_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0"]


def test_xrootd_interface_refuses_other_schemes(xrootd_bindings) -> None:
    with pytest.raises(RemoteNotSupportedError, match="only serves root:// URLs"):
        XRootDInterface().stat("davs://host/a")
    with pytest.raises(RemoteNotSupportedError, match="cannot rename across servers"):
        XRootDInterface().rename("root://a//x", "root://b//x")


def test_missing_xrootd_bindings_give_an_install_hint(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "XRootD", None)
    monkeypatch.setattr("pylaw.target.remote.xrootd._client", None)
    with pytest.raises(RemoteBackendMissingError, match="apt-get install python3-xrootd") as info:
        XRootDInterface().stat("root://127.0.0.1:1//a")
    assert isinstance(info.value, ImportError)


def test_xrootd_interface_survives_pickling(xrootd_bindings, make_fs, tmp_path) -> None:
    fs = make_fs("xrdcl")
    fs.mkdir("/p")
    clone = pickle.loads(pickle.dumps(fs.interface))
    assert clone.stat(fs.url("/p")).is_dir


def test_xrootd_interface_streams_files_in_chunks(make_fs, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("pylaw.target.remote.xrootd.CHUNK", 1000)  # many requests for a small file
    fs = make_fs("xrdcl")
    data = os.urandom(10_500)
    (tmp_path / "in.bin").write_bytes(data)
    fs.put(str(tmp_path / "in.bin"), "/c/in.bin")
    fs.copy("/c/in.bin", "/c/copy.bin")  # root:// to root://, streamed through the client
    fs.get("/c/copy.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data
    assert fs.stat("/c/in.bin").size == len(data)


def test_xrootd_get_of_a_missing_file_creates_no_local_file(make_fs, tmp_path) -> None:
    fs = make_fs("xrdcl")
    with pytest.raises(RemoteFileNotFoundError):
        fs.interface.copy(fs.url("/missing.bin"), f"file://{tmp_path}/local.bin")
    assert not (tmp_path / "local.bin").exists()


def test_an_untrusted_server_certificate_fails_at_once_with_advice(request, monkeypatch) -> None:
    server = request.getfixturevalue("nginx_webdavs_server")
    monkeypatch.delenv("X509_CERT_DIR", raising=False)  # the test CA is not trusted now
    sleeps: list[float] = []
    fs = RemoteFileSystem("untrusted", [server.url], CountingInterface(GFALInterface()),
                          RetryPolicy(attempts=3, delay=0.01), sleep=sleeps.append)
    with pytest.raises(RemoteCertificateError, match=r"certificate verification failed.*X509_CERT_DIR"):
        fs.stat("/a")
    assert fs.interface.calls == {"stat": 1} and sleeps == []  # not retried


def test_xrootd_transfer_timeout_bounds_a_whole_copy(make_fs, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("pylaw.target.remote.xrootd.CHUNK", 1000)
    fs = make_fs("xrdcl")
    fs.mkdir("/t")
    (tmp_path / "big.bin").write_bytes(os.urandom(10_000))
    hasty = XRootDInterface(transfer_timeout=1e-9)  # over before the first chunk is sent
    with pytest.raises(RemoteTimeoutError, match="took longer than transfer_timeout"):
        hasty.copy(f"file://{tmp_path}/big.bin", fs.url("/t/big.bin"))
    XRootDInterface(transfer_timeout=60).copy(f"file://{tmp_path}/big.bin", fs.url("/t/big.bin"))
    assert fs.stat("/t/big.bin").size == 10_000
