"""Fault injection: 20 % of connections to a real server dropped, cut or delayed.

Every operation must either succeed (after retries) or fail with a pylaw RemoteError; no
partial file may ever appear under its final name (checked on the server's own disk);
the cache must never serve stale or partial data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pylaw.errors import RemoteError, TransferFailedError
from pylaw.target.base import TMP_PREFIX
from pylaw.target.remote.cache import RemoteCache
from pylaw.target.remote.filesystem import RemoteFileSystem
from pylaw.target.remote.gfal import GFALInterface
from pylaw.target.remote.retry import RetryPolicy
from pylaw.target.remote.target import RemoteFileTarget
from tests.faultproxy import FaultProxy
from tests.remote.conftest import interface_for

FILES = 24


@pytest.fixture(params=("root", "xrdcl", "dav"))
def faulty(request, tmp_path) -> Iterator[tuple[RemoteFileSystem, RemoteFileSystem, str, FaultProxy]]:
    """(fs through the proxy with a cache, fs direct to the server, local dir of the base, proxy)."""
    server = request.getfixturevalue("webdav_server" if request.param == "dav" else "xrootd_server")
    if request.param == "xrdcl":
        request.getfixturevalue("xrootd_bindings")
    name = f"faults-{request.param}-{os.urandom(4).hex()}"
    direct = RemoteFileSystem(f"direct-{name}", [f"{server.url}/{name}"], GFALInterface())
    direct.mkdir("/")
    with FaultProxy(server.port, fraction=0.2, seed=42, per_request=True) as proxy:
        base = f"{server.url.replace(str(server.port), str(proxy.port), 1)}/{name}"
        fs = RemoteFileSystem(name, [base], interface_for(request.param),
                              RetryPolicy(attempts=10, delay=0.01, max_delay=0.1, timeout=10),
                              cache=RemoteCache(str(tmp_path / "cache"), 10**7), parallel=4)
        yield fs, direct, server.local_path(name), proxy


def content(i: int, version: int = 0) -> bytes:
    return (f"file {i} version {version} ".encode() * (500 * (i + 1)))[: 3000 * (i + 1) + version]


def final_files(directory: str) -> dict[str, bytes]:
    """What the server itself has under final (non-temporary) names."""
    found = {}
    for name in os.listdir(directory):
        if not name.startswith(TMP_PREFIX):
            with open(os.path.join(directory, name), "rb") as f:
                found[name] = f.read()
    return found


def test_operations_succeed_or_fail_clearly_under_faults(faulty, tmp_path) -> None:
    fs, _, on_disk, proxy = faulty
    expected: dict[str, bytes] = {}
    failures = 0
    local = tmp_path / "src"
    local.mkdir()
    for i in range(FILES):
        (local / f"f{i}.bin").write_bytes(content(i))
    # single atomic uploads through targets
    for i in range(FILES // 2):
        try:
            RemoteFileTarget(f"d/f{i}.bin", fs=fs).copy_from_local(str(local / f"f{i}.bin"))
            expected[f"f{i}.bin"] = content(i)
        except RemoteError:
            failures += 1
    # a batch upload: per-file results
    pairs = [(str(local / f"f{i}.bin"), f"d/f{i}.bin") for i in range(FILES // 2, FILES)]
    try:
        results = fs.copy_many(pairs, "put", on_error="collect")
    except RemoteError:  # the one mkdir of the batch failed after all retries
        results = []
        failures += len(pairs)
    for result in results:
        if result.ok:
            expected[os.path.basename(result.destination)] = content(int(result.destination[3:-4]))
        else:
            assert isinstance(result.error, (RemoteError, OSError)), result.error
            failures += 1
    on_server = final_files(os.path.join(on_disk, "d"))
    for name, data in on_server.items():  # never a partial file under a final name
        assert data == content(int(name[1:-4])), f"{name} is partial or wrong on the server"
    assert set(expected) <= set(on_server)
    assert proxy.stats["drop"] + proxy.stats["cut"] + proxy.stats["delay"] > 0  # faults did happen
    # Retries must carry most uploads through (an upload makes several requests, so at 20 %
    # faults per request most would fail without them); a loaded 2-core machine can still
    # exhaust the attempts of a few, which the lines above prove are clean failures.
    assert failures <= FILES // 4, f"{failures} of {FILES} uploads failed despite 10 attempts each"


def read_or_error(fs: RemoteFileSystem, path: str) -> bytes | None:
    try:
        with RemoteFileTarget(path, fs=fs).open("rb") as f:
            return f.read()
    except (RemoteError, TransferFailedError):
        return None


def test_cache_never_serves_stale_or_partial_data_under_faults(faulty, tmp_path) -> None:
    fs, direct, _, proxy = faulty
    for i in range(FILES // 2):
        (tmp_path / "v0").write_bytes(content(i))
        direct.put(str(tmp_path / "v0"), f"c/f{i}.bin")
    for i in range(FILES // 2):
        assert read_or_error(fs, f"c/f{i}.bin") in (content(i), None)
    for i in range(0, FILES // 2, 2):  # another client writes new versions
        (tmp_path / "v1").write_bytes(content(i, version=1))
        direct.put(str(tmp_path / "v1"), f"c/f{i}.bin")
    served = 0
    for i in range(FILES // 2):
        current = content(i, version=1 if i % 2 == 0 else 0)
        data = read_or_error(fs, f"c/f{i}.bin")
        assert data in (current, None), f"f{i}: the cache served stale or partial data"
        served += data is not None
    assert served >= FILES // 2 - 1
    assert proxy.stats["request_drop"] + proxy.stats["request_cut"] > 0, proxy.stats
