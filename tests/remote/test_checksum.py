"""Validation by checksum against the real servers: what each backend reports, corrupted transfers caught.

Corruption is real: :class:`CorruptingInterface` wraps the real interface and flips a byte
of the local file between the moment pylaw checksummed it and the moment it is sent (an
upload), or after it arrived (a download); the server and the data path are the real ones.
"""

from __future__ import annotations

import hashlib
import sys
import zlib
from collections.abc import Iterator

import pytest

from pylaw.errors import RemoteChecksumError, RemoteFileNotFoundError
from pylaw.target.remote.checksum import Checksummer, file_checksums, normalize
from pylaw.target.remote.filesystem import RemoteFileSystem
from pylaw.target.remote.gfal import GFALInterface
from pylaw.target.remote.interface import FileInterface
from pylaw.target.remote.target import RemoteFileTarget
from pylaw.target.remote.xrootd import XRootDInterface
from tests.remote.conftest import CountingInterface
from tests.services._process import running
from tests.services.xrootd import XRootDServer, client_environment

#: backends whose storage reports checksums (gfal2's file plugin computes them on the local disk)
REPORTING = ("file", "root", "xrdcl")
PAYLOAD = b"a"  # adler32 0x00620062: leading zeros, which servers may or may not print
BIG = bytes(range(256)) * 5000


def expected(data: bytes, algorithm: str) -> str:
    return f"{zlib.adler32(data):08x}" if algorithm == "adler32" else hashlib.md5(data).hexdigest()


class CorruptingInterface(CountingInterface):
    """The real interface; flips the first byte of the local file before an upload or after a download."""

    def __init__(self, inner: FileInterface, on: str) -> None:
        super().__init__(inner)
        self.on = on
        self.corrupt_names: set[str] = set()

    def copy(self, source: str, destination: str, overwrite: bool = True, timeout: float | None = None) -> None:
        wanted = not self.corrupt_names or any(name in source + destination for name in self.corrupt_names)
        if self.on == "put" and source.startswith("file://") and wanted:
            flip(source[len("file://"):])  # after pylaw computed its checksum, before the data is sent
        super().copy(source, destination, overwrite, timeout)
        if self.on == "get" and destination.startswith("file://") and wanted:
            flip(destination[len("file://"):])


def flip(path: str) -> None:
    with open(path, "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0xFF]))


def local(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# -- the primitive, per backend ----------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["adler32", "md5"])
@pytest.mark.parametrize("data", [PAYLOAD, BIG], ids=["one-byte", "1.3MB"])
def test_checksum_is_reported_or_none(fs: RemoteFileSystem, backend: str, tmp_path, algorithm, data) -> None:
    fs.put(local(tmp_path, "in.bin", data), "/c/f.bin")
    reported = fs.interface.checksum(fs.url("/c/f.bin"), algorithm)
    if backend in REPORTING:
        assert reported == expected(data, algorithm)
    else:  # wsgidav and nginx send no Digest for gfal2's Want-Digest: they cannot report one
        assert reported is None
    assert fs.checksum("/c/f.bin", algorithm) == reported


def test_checksum_of_missing_file(fs: RemoteFileSystem) -> None:
    with pytest.raises(RemoteFileNotFoundError):  # WebDAV too: gfal2's HEAD answers 404
        fs.interface.checksum(fs.url("/nope.bin"), "adler32")


def test_unknown_algorithm_is_refused(fs: RemoteFileSystem) -> None:
    with pytest.raises(ValueError, match="adler32, md5"):
        fs.checksum("/c/f.bin", "sha1")


@pytest.fixture(scope="module")
def adler_only_xrootd() -> Iterator[XRootDServer]:
    """An xrootd configured with ``xrootd.chksum adler32`` only."""
    client_environment()
    yield from running(XRootDServer(checksums=("adler32",)), "xrootd (adler32 only)", (OSError, RuntimeError,
                                                                                        KeyError))


@pytest.fixture(scope="module")
def plain_xrootd() -> Iterator[XRootDServer]:
    """An xrootd without ``xrootd.chksum``."""
    client_environment()
    yield from running(XRootDServer(checksums=()), "xrootd (no checksums)", (OSError, RuntimeError, KeyError))


@pytest.mark.parametrize("interface", [GFALInterface, XRootDInterface])
def test_xrootd_without_the_algorithm_reports_none(adler_only_xrootd, plain_xrootd, gfal2_module, xrootd_bindings,
                                                   interface, tmp_path) -> None:
    source = "file://" + local(tmp_path, "in.bin", BIG)
    adler_only, plain = interface(), interface()
    adler_only.copy(source, adler_only_xrootd.url + "/f.bin")
    assert adler_only.checksum(adler_only_xrootd.url + "/f.bin", "adler32") == expected(BIG, "adler32")
    # with one algorithm configured, xrootd ignores cks.type and answers "adler32 <hex>"
    assert adler_only.checksum(adler_only_xrootd.url + "/f.bin", "md5") is None
    plain.copy(source, plain_xrootd.url + "/f.bin")
    for algorithm in ("adler32", "md5"):
        assert plain.checksum(plain_xrootd.url + "/f.bin", algorithm) is None  # "[3013] ... not supported"


def test_checksummer_streams_like_one_read(tmp_path) -> None:
    summer = Checksummer()
    for start in range(0, len(BIG), 4099):
        summer.update(BIG[start:start + 4099])
    assert summer.digests() == {"adler32": expected(BIG, "adler32"), "md5": expected(BIG, "md5")}
    assert file_checksums(local(tmp_path, "f", BIG)).digests() == summer.digests()
    assert normalize("adler32", "620062") == normalize("adler32", "0x00620062") == "00620062"
    with pytest.raises(ValueError):
        normalize("md5", "620062")


# -- uploads ----------------------------------------------------------------------------

def corrupting_fs(make_fs, backend: str, on: str, **kwargs) -> RemoteFileSystem:
    fs = make_fs(backend, **kwargs)
    fs.interface = CorruptingInterface(fs.interface, on)
    return fs


@pytest.mark.parametrize("backend_name", REPORTING)
def test_corrupted_upload_is_refused_and_the_old_file_stays(make_fs, backend_name, tmp_path) -> None:
    fs = corrupting_fs(make_fs, backend_name, "put")
    fs.interface.corrupt_names = {"new.bin"}
    fs.put(local(tmp_path, "old.bin", b"old content"), "/u/f.bin")
    with pytest.raises(RemoteChecksumError) as info:
        fs.put(local(tmp_path, "new.bin", b"new content"), "/u/f.bin")
    assert info.value.algorithm == "adler32"
    assert info.value.expected == expected(b"new content", "adler32")
    assert info.value.actual == expected(b"\x91ew content", "adler32")  # what the storage really got
    assert fs.listdir("/u") == ["f.bin"]  # the temporary was removed
    fs.get("/u/f.bin", str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == b"old content"


@pytest.mark.parametrize("backend_name", ["dav", "nginx"])
def test_upload_to_storage_without_checksums_checks_sizes_only(make_fs, backend_name, tmp_path) -> None:
    fs = corrupting_fs(make_fs, backend_name, "put")
    fs.put(local(tmp_path, "new.bin", b"new content"), "/u/f.bin")  # same size: undetectable there
    assert fs.interface.calls["checksum"] == 1  # asked once; then known: no local checksum, no request
    fs.put(local(tmp_path, "new2.bin", b"new content"), "/u/g.bin")
    assert fs.interface.calls["checksum"] == 1


def test_upload_with_checksum_none_asks_nothing(make_fs, tmp_path) -> None:
    fs = corrupting_fs(make_fs, "root", "put", checksum=None)
    fs.put(local(tmp_path, "new.bin", b"new content"), "/u/f.bin")
    assert "checksum" not in fs.interface.calls


@pytest.mark.parametrize("backend_name", ["root", "xrdcl"])
def test_batch_upload_refuses_the_corrupted_file_only(make_fs, backend_name, tmp_path) -> None:
    fs = corrupting_fs(make_fs, backend_name, "put")
    fs.interface.corrupt_names = {"bad.txt"}
    names = ["a.txt", "bad.txt", "c.txt"]
    pairs = [(local(tmp_path, name, name.encode() * 10), f"/b/{name}") for name in names]
    results = fs.copy_many(pairs, "put", on_error="collect")
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, RemoteChecksumError) and results[1].attempts == 1  # not retried
    assert fs.listdir("/b") == ["a.txt", "c.txt"]  # nothing under the final name, no temporary
    assert fs.interface.calls["checksum"] == 3


@pytest.mark.parametrize("backend_name", ["root", "xrdcl"])
def test_open_w_checksums_while_writing(make_fs, backend_name) -> None:
    """Text mode (encoding, newlines): the streamed checksum must equal the server's, or the upload fails."""
    fs = make_fs(backend_name)
    target = RemoteFileTarget("/w/text.txt", fs=fs)
    text = "zeile ä ö ü\n" * 5000
    with target.open("w", encoding="utf-8") as f:
        for line in text.splitlines(keepends=True):
            f.write(line)
    assert fs.checksum("/w/text.txt") == expected(text.encode(), "adler32")
    with target.open("wb") as f:
        f.write(BIG)
    assert fs.checksum("/w/text.txt", "md5") == expected(BIG, "md5")


READS: list[str] | None = None


def _record_reads(event: str, args: tuple) -> None:
    if READS is not None and event == "open" and isinstance(args[0], str) and "pylaw-upload-" in args[0] \
            and args[1] in ("r", "rb"):
        READS.append(args[0])


sys.addaudithook(_record_reads)  # process-wide and permanent: inert while READS is None


@pytest.mark.parametrize("backend_name", ["root", "xrdcl"])
def test_open_w_reads_the_local_file_once(make_fs, backend_name) -> None:
    """The checksum of a file written through open("w") costs no read: the only one is the transfer's."""
    global READS
    fs = make_fs(backend_name)
    READS = []
    try:
        with RemoteFileTarget("/w/once.bin", fs=fs).open("wb") as f:
            f.write(BIG)
        reads = READS
    finally:
        READS = None
    assert len(reads) == 1, reads  # gfal2 and XrdCl read it to send it; nobody else does
    assert fs.checksum("/w/once.bin") == expected(BIG, "adler32")


# -- downloads --------------------------------------------------------------------------

@pytest.mark.parametrize("backend_name", ["root", "xrdcl"])
def test_corrupted_download_is_refused(make_fs, backend_name, tmp_path) -> None:
    fs = corrupting_fs(make_fs, backend_name, "get")
    fs.put(local(tmp_path, "in.bin", BIG), "/d/f.bin")
    destination = tmp_path / "out" / "f.bin"
    with pytest.raises(RemoteChecksumError):
        fs.get("/d/f.bin", str(destination))
    assert list((tmp_path / "out").iterdir()) == []  # nothing under the local name either
    results = fs.copy_many([("/d/f.bin", str(destination))], "get", on_error="collect")
    assert isinstance(results[0].error, RemoteChecksumError) and not destination.exists()
