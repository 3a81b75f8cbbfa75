import os
import subprocess
import sys
import textwrap

import pytest

import pylaw
from pylaw.errors import FormatterError
from pylaw.target.base import TMP_PREFIX


def test_open_write_is_atomic_and_publishes_on_close(tmp_path):
    target = pylaw.LocalFileTarget(tmp_path / "sub" / "a.txt")
    with target.open("w") as f:
        f.write("hello")
        assert not target.exists(), "visible before the writer finished"
    assert target.exists() and target.load() == "hello"
    assert os.listdir(tmp_path / "sub") == ["a.txt"]


def test_exception_while_writing_leaves_nothing(tmp_path):
    target = pylaw.LocalFileTarget(tmp_path / "a.json")
    target.dump({"old": 1})
    with pytest.raises(RuntimeError), target.open("w") as f:
        f.write('{"half": ')
        raise RuntimeError("crash mid-write")
    assert target.load() == {"old": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_killed_process_mid_write_never_leaves_the_final_name(tmp_path):
    final = tmp_path / "big.txt"
    script = textwrap.dedent(f"""
        import os, signal, pylaw
        t = pylaw.LocalFileTarget({str(final)!r})
        with t.open("w") as f:
            f.write("x" * 100000)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert result.returncode == -9
    assert not final.exists()
    leftovers = os.listdir(tmp_path)
    assert leftovers and all(name.startswith(TMP_PREFIX) for name in leftovers)


def test_written_files_get_umask_permissions(tmp_path):
    target = pylaw.LocalFileTarget(tmp_path / "p.txt")
    target.dump("x")
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(target.path).st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("name,obj", [
    ("a.json", {"a": [1, 2]}), ("a.yaml", {"b": "c"}), ("a.pkl", {1, 2}), ("a.txt", "text"),
])
def test_formatters_roundtrip(tmp_path, name, obj):
    target = pylaw.LocalFileTarget(tmp_path / name)
    target.dump(obj)
    assert target.load() == obj


def test_numpy_formatters(tmp_path):
    import numpy as np  # a test dependency: its absence must fail, not skip
    npy = pylaw.LocalFileTarget(tmp_path / "a.npy")
    npy.dump(np.arange(5))
    assert npy.load().tolist() == [0, 1, 2, 3, 4]
    npz = pylaw.LocalFileTarget(tmp_path / "a.npz")
    npz.dump({"x": np.ones(3), "y": np.zeros(2)})
    loaded = npz.load()
    assert sorted(loaded) == ["x", "y"] and loaded["x"].sum() == 3


def test_unknown_extension_is_a_clear_error(tmp_path):
    with pytest.raises(FormatterError, match="no formatter for"):
        pylaw.LocalFileTarget(tmp_path / "a.weird").dump(1)
    target = pylaw.LocalFileTarget(tmp_path / "a.weird")
    target.dump({"a": 1}, formatter="json")
    assert target.load(formatter="json") == {"a": 1}


def test_touch_parent_and_remove(tmp_path):
    target = pylaw.LocalFileTarget(tmp_path / "x" / "y" / "f.txt")
    assert not target.parent.exists()
    target.parent.touch()
    assert target.parent.exists() and isinstance(target.parent, pylaw.LocalDirectoryTarget)
    target.touch()
    assert target.exists() and target.stat().st_size == 0
    assert target.remove() and not target.exists()
    assert not target.remove()
    with pytest.raises(FileNotFoundError):
        target.remove(silent=False)


def test_localize_write_moves_into_place_only_on_success(tmp_path):
    target = pylaw.LocalFileTarget(tmp_path / "out.dat")
    with pytest.raises(ValueError), target.localize("w") as tmp:
        with open(tmp.path, "w") as f:
            f.write("partial")
        raise ValueError("tool failed")
    assert os.listdir(tmp_path) == []
    with target.localize("w") as tmp:
        assert tmp.path != target.path and tmp.path.endswith("out.dat")
        with open(tmp.path, "w") as f:
            f.write("done")
    assert target.load(formatter="text") == "done"
    with target.localize("r") as local:
        assert local.path == target.path


def test_localize_write_without_output_is_an_error(tmp_path):
    target = pylaw.LocalFileTarget(tmp_path / "never.txt")
    with pytest.raises(FileNotFoundError, match="never written"), target.localize("w"):
        pass


def test_directory_target(tmp_path):
    directory = pylaw.LocalDirectoryTarget(tmp_path / "d")
    directory.touch()
    directory.child("a.txt").dump("a")
    directory.child("sub", "d").touch()
    assert directory.listdir() == ["a.txt", "sub"]
    copy = directory.copy_to(str(tmp_path / "copy"))
    assert copy.child("a.txt").load() == "a"
    assert directory.remove() and not directory.exists()
