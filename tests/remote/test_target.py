"""Remote targets behave like local ones, on a real xrootd and a real WebDAV server."""

from __future__ import annotations

import json
import pickle

import luigi
import pytest

from pylaw.errors import StorageConfigError
from pylaw.target.base import TMP_PREFIX
from pylaw.target.collection import SiblingFileCollection, TargetCollection
from pylaw.target.remote.target import (
    DCacheTarget,
    RemoteDirectoryTarget,
    RemoteFileTarget,
    forget_filesystems,
    get_filesystem,
)

REMOTE = ("root", "xrdcl", "dav", "davs", "memory")


@pytest.fixture(params=REMOTE)
def remote_fs(request, make_fs):
    return make_fs(request.param, counting=True)


def test_task_style_write_and_read(remote_fs) -> None:
    target = RemoteFileTarget("reco/ttH/reco.txt", fs=remote_fs.name)
    assert not target.exists()
    target.parent.touch()
    with target.open("w") as f:
        f.write("line 1\n")
    assert target.exists()
    with target.open("r") as f:
        assert f.read() == "line 1\n"
    assert remote_fs.listdir("reco/ttH") == ["reco.txt"]


def test_failed_write_publishes_nothing(remote_fs) -> None:
    target = RemoteFileTarget("w/out.txt", fs=remote_fs)
    target.parent.touch()
    with pytest.raises(RuntimeError), target.open("w") as f:
        f.write("partial")
        raise RuntimeError("the task crashed mid-write")
    assert not target.exists()
    assert remote_fs.listdir("w") == []
    assert remote_fs.interface.calls.get("copy", 0) == 0  # nothing was even uploaded


def test_dump_and_load_through_formatters(remote_fs) -> None:
    target = RemoteFileTarget("f/data.json", fs=remote_fs)
    target.dump({"a": [1, 2]})
    assert target.load() == {"a": [1, 2]}
    assert json.loads(target.load(formatter="text")) == {"a": [1, 2]}


def test_localize_write_and_read(remote_fs) -> None:
    target = RemoteFileTarget("loc/out.bin", fs=remote_fs)
    with target.localize("w") as tmp:
        with open(tmp.path, "wb") as f:
            f.write(b"\x00\x01payload")
        assert not target.exists()  # published only when the block ends
    assert target.exists()
    with target.localize("r") as local, open(local.path, "rb") as f:
        assert f.read() == b"\x00\x01payload"
    with pytest.raises(FileNotFoundError, match="never written"), target.localize("w"):
        pass
    assert target.stat().size == 9


def test_touch_creates_parents_and_keeps_content(remote_fs) -> None:
    target = RemoteFileTarget("t/u/v.txt", fs=remote_fs)
    target.touch()
    assert target.stat().size == 0
    with target.open("w") as f:
        f.write("kept")
    target.touch()
    assert target.stat().size == 4


def test_remove_file_and_directory(remote_fs) -> None:
    directory = RemoteDirectoryTarget("rm", fs=remote_fs)
    for name in ("a.txt", "b.txt"):
        directory.child(name).touch()
    directory.child("sub", "d").touch()
    assert directory.listdir() == ["a.txt", "b.txt", "sub"]
    assert directory.child("a.txt").remove() is True
    assert directory.child("a.txt").remove() is False
    assert directory.remove() is True
    assert not directory.exists()


def test_copy_to_local_fetches_outputs(remote_fs, tmp_path) -> None:
    target = RemoteFileTarget("fetch/a.txt", fs=remote_fs)
    target.dump("hello", formatter="text")
    local = target.copy_to(str(tmp_path))
    assert local.path == str(tmp_path / "a.txt") and (tmp_path / "a.txt").read_text() == "hello"
    tree = RemoteDirectoryTarget("fetch", fs=remote_fs)
    tree.child("deep/b.txt").dump("b", formatter="text")
    tree.copy_to(str(tmp_path / "tree"))
    assert (tmp_path / "tree" / "deep" / "b.txt").read_text() == "b"


def test_collection_lists_each_directory_once(remote_fs) -> None:
    directory = RemoteDirectoryTarget("coll", fs=remote_fs)
    targets = {i: directory.child(f"out_{i}.txt") for i in range(30)}
    for i in range(0, 30, 3):
        targets[i].touch()
    other = RemoteFileTarget("other/dir/x.txt", fs=remote_fs)
    other.touch()
    remote_fs.interface.calls.clear()
    collection = TargetCollection({**targets, "x": other}, threshold=11)
    assert collection.count() == 11
    assert collection.exists()
    assert remote_fs.interface.calls == {"listdir": 4}  # two count() calls x two directories
    missing = RemoteFileTarget("nowhere/y.txt", fs=remote_fs)
    assert TargetCollection([missing]).count() == 0
    assert SiblingFileCollection(targets).dir == directory


def test_equality_includes_the_storage_element(remote_fs) -> None:
    a = RemoteFileTarget("/x/y.txt", fs=remote_fs.name)
    assert a == RemoteFileTarget("x//y.txt", fs=remote_fs.name)
    assert a != RemoteFileTarget("/x/y.txt", fs="elsewhere")
    assert len({a, RemoteFileTarget("/x/y.txt", fs=remote_fs.name)}) == 1
    assert a.parent == RemoteDirectoryTarget("/x", fs=remote_fs.name)


def test_dcache_target_reads_the_config_section(base_url_for, tmp_path) -> None:
    config = luigi.configuration.get_config()
    base = base_url_for("root")
    assert not config.has_section("storage:dcache")
    config.add_section("storage:dcache")
    config.set("storage:dcache", "base", base)
    config.set("storage:dcache", "retries", "1")
    forget_filesystems()
    try:
        target = DCacheTarget("cfg/a.txt")
        target.dump("via config", formatter="text")
        assert target.load(formatter="text") == "via config"
        assert get_filesystem("dcache").bases == (base,)
        with pytest.raises(StorageConfigError, match=r"no storage element 'nope'.*\[storage:nope\]"):
            RemoteFileTarget("a", fs="nope").exists()
    finally:
        config.remove_section("storage:dcache")
        forget_filesystems()


def test_no_temporary_files_are_left_after_writes(remote_fs) -> None:
    for i in range(5):
        RemoteFileTarget(f"clean/f{i}.txt", fs=remote_fs).dump(str(i), formatter="text")
    assert not [n for n in remote_fs.listdir("clean") if n.startswith(TMP_PREFIX)]


def test_targets_and_filesystems_survive_pickling(remote_fs) -> None:
    target = RemoteFileTarget("p/a.txt", fs=remote_fs)
    target.dump("before", formatter="text")
    copy = pickle.loads(pickle.dumps(target))
    assert copy == target and copy.load(formatter="text") == "before"
    copy.dump("after", formatter="text")
    assert target.load(formatter="text") == "after"
