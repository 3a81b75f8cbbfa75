"""Streaming reads (``open("r")``): blocks on demand, compared with the plain download on many cases."""

from __future__ import annotations

import io
import os
import random

import pytest

from pylaw.errors import RemoteError
from pylaw.target.remote.cache import RemoteCache
from pylaw.target.remote.contract import pattern
from pylaw.target.remote.filesystem import RemoteFileSystem
from pylaw.target.remote.interface import FileInterface, ReadHandle
from pylaw.target.remote.memory import MemoryInterface
from pylaw.target.remote.retry import RetryPolicy
from pylaw.target.remote.target import RemoteFileTarget
from tests.faultproxy import FaultProxy
from tests.remote.conftest import interface_for
from tests.remote.readops import random_read_answers

BLOCK = 32 << 10
#: backends read in blocks (through a storage agent: tests/remote/test_forksafe.py, test_tls.py)
STREAMING = ("root", "xrdcl", "davs", "memory")


def upload(fs: RemoteFileSystem, tmp_path, path: str, data: bytes) -> None:
    local = tmp_path / os.path.basename(path)
    local.write_bytes(data)
    fs.put(str(local), path)


@pytest.mark.parametrize("backend_name", STREAMING)
def test_open_fetches_only_what_is_read(make_fs, tmp_path, backend_name) -> None:
    fs = make_fs(backend_name, counting=True)
    data = pattern(20 * BLOCK)
    upload(fs, tmp_path, "/big.bin", data)
    fs.interface.calls.clear()
    with RemoteFileTarget("/big.bin", fs=fs).open("rb", block_size=BLOCK) as f:
        assert f.read(100) == data[:100]
        f.seek(15 * BLOCK)
        assert f.read(10) == data[15 * BLOCK:15 * BLOCK + 10]
    assert fs.interface.calls.get("open_read") == 1 and "copy" not in fs.interface.calls  # no download


@pytest.mark.parametrize("backend_name", STREAMING)
def test_random_reads_equal_the_plain_download(make_fs, tmp_path, backend_name) -> None:
    """300 random operations (read(n), seek from start/current/end, readline, tell) on the stream and on
    the downloaded bytes give the same answers."""
    fs = make_fs(backend_name)
    data = b"".join(pattern(random.Random(i).randrange(1, 3 * BLOCK), seed=i) + b"\n" for i in range(12))
    upload(fs, tmp_path, "/r.bin", data)
    fs.get("/r.bin", str(tmp_path / "plain.bin"))
    plain = io.BytesIO((tmp_path / "plain.bin").read_bytes())
    with fs.open("/r.bin", "rb", block_size=BLOCK) as stream:
        assert random_read_answers(stream, len(data), BLOCK) == random_read_answers(plain, len(data), BLOCK)


def test_text_lines_equal_the_plain_download(make_fs, tmp_path) -> None:
    fs = make_fs("davs")
    text = "".join(f"{i} {'é' * (i % 50)}\r\n" for i in range(5000))
    upload(fs, tmp_path, "/t.txt", text.encode())
    with fs.open("/t.txt", "r", block_size=BLOCK, newline="") as f:
        assert list(f) == text.splitlines(keepends=True)
    with RemoteFileTarget("/t.txt", fs=fs).open("r") as f:
        assert f.read() == text.replace("\r\n", "\n")


def test_a_cache_serves_whole_files_and_streams_bigger_ones(make_fs, tmp_path) -> None:
    fs = make_fs("root", counting=True, cache=RemoteCache(str(tmp_path / "cache"), 2 * BLOCK))
    upload(fs, tmp_path, "/small.bin", pattern(BLOCK))
    upload(fs, tmp_path, "/large.bin", pattern(4 * BLOCK))
    fs.interface.calls.clear()
    assert RemoteFileTarget("/small.bin", fs=fs).open("rb").read() == pattern(BLOCK)
    assert fs.interface.calls.get("copy") == 1 and "open_read" not in fs.interface.calls
    assert RemoteFileTarget("/large.bin", fs=fs).open("rb", block_size=BLOCK).read() == pattern(4 * BLOCK)
    assert fs.interface.calls.get("open_read") == 1 and fs.interface.calls.get("copy") == 1


class NoOffsetReads(MemoryInterface):
    """A third-party-like interface without ``open_read``."""

    def open_read(self, url: str, timeout: float | None = None) -> ReadHandle:
        return FileInterface.open_read(self, url, timeout)


def test_an_interface_without_offset_reads_is_downloaded(make_fs, tmp_path) -> None:
    base = make_fs("memory").bases[0]
    fs = RemoteFileSystem("no-offsets", [base], NoOffsetReads())
    upload(fs, tmp_path, "/d.bin", pattern(3 * BLOCK))
    with fs.open("/d.bin", "rb") as f:
        f.seek(BLOCK)
        assert f.read(5) == pattern(3 * BLOCK)[BLOCK:BLOCK + 5]


@pytest.mark.parametrize("backend_name", ("root", "xrdcl"))
def test_streaming_under_faults_gives_the_data_or_a_remote_error(request, tmp_path, backend_name) -> None:
    """20 % of requests to a real xrootd dropped, cut or delayed: each read is right or raises RemoteError."""
    server = request.getfixturevalue("xrootd_server")
    if backend_name == "xrdcl":
        request.getfixturevalue("xrootd_bindings")
    name = f"stream-{os.urandom(4).hex()}"
    direct = RemoteFileSystem("direct", [f"{server.url}/{name}"], interface_for("root"))
    data = pattern(8 * BLOCK)
    upload(direct, tmp_path, "/f.bin", data)
    good = failed = 0
    with FaultProxy(server.port, fraction=0.2, seed=3, per_request=True) as proxy:
        base = f"{server.url.replace(str(server.port), str(proxy.port), 1)}/{name}"
        with RemoteFileSystem(name, [base], interface_for(backend_name),
                              RetryPolicy(attempts=8, delay=0.01, max_delay=0.05, timeout=5)) as fs:
            for round_number in range(6):
                try:
                    with fs.open("/f.bin", "rb", block_size=BLOCK) as f:
                        f.seek(round_number * BLOCK)
                        assert f.read(3 * BLOCK) == data[round_number * BLOCK:(round_number + 3) * BLOCK]
                    good += 1
                except RemoteError:
                    failed += 1
        faults = sum(proxy.stats[f"{prefix}{mode}"] for prefix in ("", "request_") for mode in ("drop", "cut"))
        assert faults > 0 and good > 0, (proxy.stats, good, failed)
