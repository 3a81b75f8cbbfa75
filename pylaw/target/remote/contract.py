"""The contract test suite of file interfaces, shipped so that any backend can run it.

Every built-in interface runs it (``tests/remote/test_contract.py``: gfal2 on file://,
root:// and davs://, XRootD's client, the local and the memory interfaces). A third-party
interface runs the same suite by subclassing :class:`FileSystemContract` in its own tests
and providing the ``fs`` fixture: a :class:`~pylaw.target.remote.filesystem.RemoteFileSystem`
on an empty, existing base directory, fresh for each test::

    import uuid
    import pytest
    from pylaw.target.remote import RemoteFileSystem
    from pylaw.target.remote.contract import FileSystemContract

    class TestMyInterface(FileSystemContract):
        @pytest.fixture
        def fs(self):
            base = f"s3://test-bucket/{uuid.uuid4().hex}"
            MyInterface().mkdir(base)
            with RemoteFileSystem("contract", [base], MyInterface()) as fs:
                yield fs

The suite goes through :class:`RemoteFileSystem`, as tasks do, so it checks what users
see: typed errors, atomic uploads, streaming reads. It needs ``pytest`` (imported here
only; ``import pylaw`` never imports this module). Tests that only some storage can pass
say so in their name and accept either documented behaviour.
"""

from __future__ import annotations

import pathlib

import pytest

from pylaw.errors import (
    PathEscapeError,
    PylawError,
    RemoteDirectoryNotEmptyError,
    RemoteError,
    RemoteFileChangedError,
    RemoteFileExistsError,
    RemoteFileNotFoundError,
    RemoteNotADirectoryError,
)
from pylaw.target.base import TMP_PREFIX
from pylaw.target.remote.filesystem import RemoteFileSystem

#: the block size the streaming tests read with: small, so that files span many blocks
BLOCK = 64 << 10


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def pattern(size: int, seed: int = 1) -> bytes:
    """``size`` bytes in which no block repeats another (a misplaced block changes the content)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += f"{seed}:{counter:09d};".encode()
        counter += 1
    return bytes(out[:size])


class FileSystemContract:
    """What every storage element keeps, whatever interface is behind it (see the module docstring)."""

    @pytest.fixture
    def fs(self) -> RemoteFileSystem:
        """A storage element on a fresh, empty base: override it in the subclass."""
        raise NotImplementedError("a FileSystemContract subclass provides the `fs` fixture")

    def test_missing_path_is_file_not_found(self, fs: RemoteFileSystem) -> None:
        with pytest.raises(RemoteFileNotFoundError) as info:
            fs.stat("/nope/missing.txt")
        assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, PylawError)
        assert "missing.txt" in str(info.value)
        assert not fs.exists("/nope/missing.txt")
        assert not fs.isdir("/nope")

    def test_put_get_round_trip_keeps_bytes(self, fs: RemoteFileSystem, tmp_path) -> None:
        data = bytes(range(256)) * 40
        fs.put(write(tmp_path, "in.bin", data), "/a/b/c.bin")
        info = fs.stat("/a/b/c.bin")
        assert (info.size, info.is_dir) == (len(data), False)
        assert fs.stat("/a/b").is_dir
        out = tmp_path / "out" / "c.bin"
        fs.get("/a/b/c.bin", str(out))
        assert out.read_bytes() == data
        assert [p.name for p in out.parent.iterdir()] == ["c.bin"]  # no local temporary left

    def test_put_leaves_no_temporary_and_replaces(self, fs: RemoteFileSystem, tmp_path) -> None:
        fs.put(write(tmp_path, "one", b"first version"), "/d/f.txt")
        fs.put(write(tmp_path, "two", b"second"), "/d/f.txt")
        assert fs.listdir("/d") == ["f.txt"]
        fs.get("/d/f.txt", str(tmp_path / "back"))
        assert (tmp_path / "back").read_bytes() == b"second"

    def test_listdir_names_files_and_directories(self, fs: RemoteFileSystem, tmp_path) -> None:
        src = write(tmp_path, "x", b"x")
        for name in ("b.txt", "a.txt"):
            fs.put(src, f"/l/{name}")
        fs.mkdir("/l/sub")
        assert fs.listdir("/l") == ["a.txt", "b.txt", "sub"]
        assert fs.listdir("/l/sub") == []

    def test_listdir_errors(self, fs: RemoteFileSystem, tmp_path) -> None:
        fs.put(write(tmp_path, "x", b"x"), "/f.txt")
        with pytest.raises(RemoteFileNotFoundError):
            fs.listdir("/missing-dir")
        # WebDAV answers a listing of a file with 404 or "not a collection": both are typed
        with pytest.raises((RemoteNotADirectoryError, RemoteFileNotFoundError)):
            fs.listdir("/f.txt")

    def test_mkdir_parents_is_idempotent(self, fs: RemoteFileSystem) -> None:
        fs.mkdir("/m/n/o")
        fs.mkdir("/m/n/o")
        assert fs.isdir("/m/n/o") and fs.isdir("/m/n")
        with pytest.raises(RemoteFileExistsError) as info:
            fs.mkdir("/m/n", parents=False)
        assert isinstance(info.value, FileExistsError)

    def test_rename_moves_a_file(self, fs: RemoteFileSystem, tmp_path) -> None:
        fs.put(write(tmp_path, "x", b"payload"), "/r/old.txt")
        fs.rename("/r/old.txt", "/r/new.txt")
        assert fs.listdir("/r") == ["new.txt"]
        assert fs.stat("/r/new.txt").size == len(b"payload")
        with pytest.raises(RemoteFileNotFoundError):
            fs.rename("/r/old.txt", "/r/other.txt")

    def test_remove_file_and_missing(self, fs: RemoteFileSystem, tmp_path) -> None:
        fs.put(write(tmp_path, "x", b"x"), "/rm/f.txt")
        assert fs.remove("/rm/f.txt") is True
        assert not fs.exists("/rm/f.txt")
        assert fs.remove("/rm/f.txt") is False
        with pytest.raises(RemoteFileNotFoundError):
            fs.remove("/rm/f.txt", silent=False)

    def test_remove_tree_recursively(self, fs: RemoteFileSystem, tmp_path) -> None:
        src = write(tmp_path, "x", b"x")
        for path in ("/t/a.txt", "/t/s1/b.txt", "/t/s1/s2/c.txt"):
            fs.put(src, path)
        fs.mkdir("/t/empty")
        assert fs.remove("/t") is True
        assert not fs.exists("/t")

    def test_non_recursive_remove_of_full_directory_fails_or_backend_is_recursive(self, fs: RemoteFileSystem,
                                                                                   tmp_path) -> None:
        fs.put(write(tmp_path, "x", b"x"), "/full/a.txt")
        url = fs.url("/full")
        if fs.interface.rmdir_is_recursive(url):
            fs.remove("/full", recursive=False)
            assert not fs.exists("/full")
        else:
            with pytest.raises(RemoteDirectoryNotEmptyError):
                fs.remove("/full", recursive=False)
            assert fs.exists("/full/a.txt")

    def test_remote_to_remote_copy(self, fs: RemoteFileSystem, tmp_path) -> None:
        fs.put(write(tmp_path, "x", b"copied bytes"), "/c/src.txt")
        fs.copy("/c/src.txt", "/c/dst/copy.txt")
        fs.get("/c/dst/copy.txt", str(tmp_path / "back"))
        assert (tmp_path / "back").read_bytes() == b"copied bytes"
        assert fs.listdir("/c/dst") == ["copy.txt"]

    def test_get_of_missing_file_leaves_nothing_local(self, fs: RemoteFileSystem, tmp_path) -> None:
        with pytest.raises(RemoteFileNotFoundError):
            fs.get("/missing.bin", str(tmp_path / "dl" / "missing.bin"))
        assert not (tmp_path / "dl").exists() or list((tmp_path / "dl").iterdir()) == []

    def test_put_of_missing_local_file_raises_and_publishes_nothing(self, fs: RemoteFileSystem, tmp_path) -> None:
        fs.mkdir("/p")
        with pytest.raises(FileNotFoundError):
            fs.put(str(tmp_path / "not-there"), "/p/f.txt")
        assert [n for n in fs.listdir("/p") if not n.startswith(TMP_PREFIX)] == []

    def test_paths_cannot_climb_above_the_base(self, fs: RemoteFileSystem) -> None:
        with pytest.raises(PathEscapeError):
            fs.url("/a/../../etc/passwd")
        assert fs.url("a//b/") == fs.url("/a/b")

    def test_every_error_is_a_remote_error(self, fs: RemoteFileSystem) -> None:
        with pytest.raises(RemoteError) as info:
            fs.listdir("/not/here")
        assert info.value.operation == "listdir" and info.value.url.endswith("/not/here")

    def test_listdir_stat_gives_sizes_in_one_listing(self, fs: RemoteFileSystem, tmp_path) -> None:
        fs.put(write(tmp_path, "a", b"12345"), "/ls/a.txt")
        fs.mkdir("/ls/sub")
        listing = fs.listdir_stat("/ls")
        assert sorted(listing) == ["a.txt", "sub"]
        assert (listing["a.txt"].size, listing["a.txt"].is_dir, listing["sub"].is_dir) == (5, False, True)
        assert listing["a.txt"] == fs.stat("/ls/a.txt")
        with pytest.raises(RemoteFileNotFoundError):
            fs.listdir_stat("/no-such-dir")


    # -- streaming reads ------------------------------------------------------------------

    def test_open_streams_text_and_binary(self, fs: RemoteFileSystem, tmp_path: pathlib.Path) -> None:
        text = "".join(f"line {i} äöü\n" for i in range(2000))
        fs.put(write(tmp_path, "t.txt", text.encode()), "/s/t.txt")
        with fs.open("/s/t.txt", "r", block_size=BLOCK) as f:
            assert f.readline() == "line 0 äöü\n"
            assert list(f)[-1] == "line 1999 äöü\n"
        with fs.open("/s/t.txt", "rb", block_size=BLOCK) as f:
            assert f.read() == text.encode()
            assert f.read() == b""

    def test_open_seeks_in_a_file_of_many_blocks(self, fs: RemoteFileSystem, tmp_path: pathlib.Path) -> None:
        data = pattern(5 * BLOCK + 123)
        fs.put(write(tmp_path, "big.bin", data), "/s/big.bin")
        with fs.open("/s/big.bin", "rb", block_size=BLOCK) as f:
            assert f.seekable() and f.tell() == 0
            assert f.read(10) == data[:10]
            for offset in (BLOCK - 3, 3 * BLOCK + 7, 17, len(data) - 5):
                assert f.seek(offset) == offset
                assert f.read(BLOCK + 11) == data[offset:offset + BLOCK + 11]
                assert f.tell() == min(len(data), offset + BLOCK + 11)
            assert f.seek(-100, 2) == len(data) - 100 and f.read() == data[-100:]
            f.seek(2 * BLOCK)
            assert f.seek(50, 1) == 2 * BLOCK + 50 and f.read(4) == data[2 * BLOCK + 50:2 * BLOCK + 54]
            assert f.seek(len(data) + 10) == len(data) + 10 and f.read(3) == b""

    def test_read_range_gives_slices(self, fs: RemoteFileSystem, tmp_path: pathlib.Path) -> None:
        """The stateless read a storage agent serves per block (``FileInterface.read_range``)."""
        data = pattern(3 * BLOCK + 5)
        fs.put(write(tmp_path, "rr.bin", data), "/s/rr.bin")
        url = fs.url("/s/rr.bin")
        for offset, length in ((0, 10), (BLOCK - 1, BLOCK + 2), (len(data) - 3, 10), (len(data) + 5, 4), (7, 0)):
            assert fs.interface.read_range(url, offset, length) == data[offset:offset + length]
        with pytest.raises(RemoteFileNotFoundError):
            fs.interface.read_range(fs.url("/s/none.bin"), 0, 0)

    def test_open_of_missing_file_and_directory(self, fs: RemoteFileSystem) -> None:
        with pytest.raises(RemoteFileNotFoundError):
            fs.open("/s/none.txt", "r")
        fs.mkdir("/s/dir")
        with pytest.raises(IsADirectoryError):
            fs.open("/s/dir", "rb")

    def test_file_replaced_during_a_read_gives_its_old_version_or_an_error(
            self, fs: RemoteFileSystem, tmp_path: pathlib.Path) -> None:
        """The promise: the bytes of the version opened, or RemoteFileChangedError; never a mixture."""
        old, new = pattern(4 * BLOCK, seed=1), pattern(3 * BLOCK + 1, seed=2)
        fs.put(write(tmp_path, "old", old), "/s/r.bin")
        with fs.open("/s/r.bin", "rb", block_size=BLOCK) as f:
            first = f.read(100)
            fs.put(write(tmp_path, "new", new), "/s/r.bin")
            try:
                rest = f.read()
            except RemoteFileChangedError:
                return
        assert first + rest == old

    def test_close_releases_and_the_storage_stays_usable(self, fs: RemoteFileSystem,
                                                         tmp_path: pathlib.Path) -> None:
        fs.put(write(tmp_path, "x", b"before close"), "/cl/f.txt")
        fs.close()
        assert fs.stat("/cl/f.txt").size == len(b"before close")
        with fs:
            fs.put(write(tmp_path, "y", b"after"), "/cl/g.txt")
        assert fs.listdir("/cl") == ["f.txt", "g.txt"]
