"""The contract every backend keeps (file://, root:// on xrootd, dav:// on wsgidav and on nginx).

Each test runs once per backend through the same RemoteFileSystem API, so a backend that
maps an error differently, or whose server behaves differently (xrootd's non-recursive
rmdir, WebDAV's recursive DELETE), fails here.
"""

from __future__ import annotations

import pytest

from pylaw.errors import (
    PathEscapeError,
    PylawError,
    RemoteDirectoryNotEmptyError,
    RemoteError,
    RemoteFileExistsError,
    RemoteFileNotFoundError,
    RemoteNotADirectoryError,
)
from pylaw.target.base import TMP_PREFIX
from pylaw.target.remote.filesystem import RemoteFileSystem


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_missing_path_is_file_not_found(fs: RemoteFileSystem) -> None:
    with pytest.raises(RemoteFileNotFoundError) as info:
        fs.stat("/nope/missing.txt")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, PylawError)
    assert "missing.txt" in str(info.value)
    assert not fs.exists("/nope/missing.txt")
    assert not fs.isdir("/nope")


def test_put_get_round_trip_keeps_bytes(fs: RemoteFileSystem, tmp_path) -> None:
    data = bytes(range(256)) * 40
    fs.put(write(tmp_path, "in.bin", data), "/a/b/c.bin")
    info = fs.stat("/a/b/c.bin")
    assert (info.size, info.is_dir) == (len(data), False)
    assert fs.stat("/a/b").is_dir
    out = tmp_path / "out" / "c.bin"
    fs.get("/a/b/c.bin", str(out))
    assert out.read_bytes() == data
    assert [p.name for p in out.parent.iterdir()] == ["c.bin"]  # no local temporary left


def test_put_leaves_no_temporary_and_replaces(fs: RemoteFileSystem, tmp_path) -> None:
    fs.put(write(tmp_path, "one", b"first version"), "/d/f.txt")
    fs.put(write(tmp_path, "two", b"second"), "/d/f.txt")
    assert fs.listdir("/d") == ["f.txt"]
    fs.get("/d/f.txt", str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == b"second"


def test_listdir_names_files_and_directories(fs: RemoteFileSystem, tmp_path) -> None:
    src = write(tmp_path, "x", b"x")
    for name in ("b.txt", "a.txt"):
        fs.put(src, f"/l/{name}")
    fs.mkdir("/l/sub")
    assert fs.listdir("/l") == ["a.txt", "b.txt", "sub"]
    assert fs.listdir("/l/sub") == []


def test_listdir_errors(fs: RemoteFileSystem, tmp_path) -> None:
    fs.put(write(tmp_path, "x", b"x"), "/f.txt")
    with pytest.raises(RemoteFileNotFoundError):
        fs.listdir("/missing-dir")
    # WebDAV answers a listing of a file with 404 or "not a collection": both are typed
    with pytest.raises((RemoteNotADirectoryError, RemoteFileNotFoundError)):
        fs.listdir("/f.txt")


def test_mkdir_parents_is_idempotent(fs: RemoteFileSystem) -> None:
    fs.mkdir("/m/n/o")
    fs.mkdir("/m/n/o")
    assert fs.isdir("/m/n/o") and fs.isdir("/m/n")
    with pytest.raises(RemoteFileExistsError) as info:
        fs.mkdir("/m/n", parents=False)
    assert isinstance(info.value, FileExistsError)


def test_rename_moves_a_file(fs: RemoteFileSystem, tmp_path) -> None:
    fs.put(write(tmp_path, "x", b"payload"), "/r/old.txt")
    fs.rename("/r/old.txt", "/r/new.txt")
    assert fs.listdir("/r") == ["new.txt"]
    assert fs.stat("/r/new.txt").size == len(b"payload")
    with pytest.raises(RemoteFileNotFoundError):
        fs.rename("/r/old.txt", "/r/other.txt")


def test_remove_file_and_missing(fs: RemoteFileSystem, tmp_path) -> None:
    fs.put(write(tmp_path, "x", b"x"), "/rm/f.txt")
    assert fs.remove("/rm/f.txt") is True
    assert not fs.exists("/rm/f.txt")
    assert fs.remove("/rm/f.txt") is False
    with pytest.raises(RemoteFileNotFoundError):
        fs.remove("/rm/f.txt", silent=False)


def test_remove_tree_recursively(fs: RemoteFileSystem, tmp_path) -> None:
    src = write(tmp_path, "x", b"x")
    for path in ("/t/a.txt", "/t/s1/b.txt", "/t/s1/s2/c.txt"):
        fs.put(src, path)
    fs.mkdir("/t/empty")
    assert fs.remove("/t") is True
    assert not fs.exists("/t")


def test_non_recursive_remove_of_full_directory_fails_or_backend_is_recursive(fs: RemoteFileSystem,
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


def test_remote_to_remote_copy(fs: RemoteFileSystem, tmp_path) -> None:
    fs.put(write(tmp_path, "x", b"copied bytes"), "/c/src.txt")
    fs.copy("/c/src.txt", "/c/dst/copy.txt")
    fs.get("/c/dst/copy.txt", str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == b"copied bytes"
    assert fs.listdir("/c/dst") == ["copy.txt"]


def test_get_of_missing_file_leaves_nothing_local(fs: RemoteFileSystem, tmp_path) -> None:
    with pytest.raises(RemoteFileNotFoundError):
        fs.get("/missing.bin", str(tmp_path / "dl" / "missing.bin"))
    assert not (tmp_path / "dl").exists() or list((tmp_path / "dl").iterdir()) == []


def test_put_of_missing_local_file_raises_and_publishes_nothing(fs: RemoteFileSystem, tmp_path) -> None:
    fs.mkdir("/p")
    with pytest.raises(FileNotFoundError):
        fs.put(str(tmp_path / "not-there"), "/p/f.txt")
    assert [n for n in fs.listdir("/p") if not n.startswith(TMP_PREFIX)] == []


def test_paths_cannot_climb_above_the_base(fs: RemoteFileSystem) -> None:
    with pytest.raises(PathEscapeError):
        fs.url("/a/../../etc/passwd")
    assert fs.url("a//b/") == fs.url("/a/b")


def test_every_error_is_a_remote_error(fs: RemoteFileSystem) -> None:
    with pytest.raises(RemoteError) as info:
        fs.listdir("/not/here")
    assert info.value.operation == "listdir" and info.value.url.endswith("/not/here")


def test_listdir_stat_gives_sizes_in_one_listing(fs: RemoteFileSystem, tmp_path) -> None:
    fs.put(write(tmp_path, "a", b"12345"), "/ls/a.txt")
    fs.mkdir("/ls/sub")
    listing = fs.listdir_stat("/ls")
    assert sorted(listing) == ["a.txt", "sub"]
    assert (listing["a.txt"].size, listing["a.txt"].is_dir, listing["sub"].is_dir) == (5, False, True)
    assert listing["a.txt"] == fs.stat("/ls/a.txt")
    with pytest.raises(RemoteFileNotFoundError):
        fs.listdir_stat("/no-such-dir")
