"""Batch transfers: parallel, one result per file, only failed transfers retried, progress on a TTY."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import sys
from pathlib import Path

import luigi
import pytest

from pylaw.errors import TransferFailedError
from pylaw.target.collection import TargetCollection
from pylaw.target.remote.target import RemoteDirectoryTarget, RemoteFileTarget
from pylaw.target.remote.transfer import ProgressBar, copy_many, fetch, upload


@pytest.fixture
def sources(tmp_path):
    directory = tmp_path / "src"
    directory.mkdir()
    paths = []
    for i in range(40):
        path = directory / f"f{i:02d}.txt"
        path.write_text(f"file {i}\n" * (i + 1))
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("backend_name", ["root", "xrdcl", "dav"])
def test_put_and_get_many(make_fs, sources, tmp_path, backend_name) -> None:
    fs = make_fs(backend_name, counting=True)
    pairs = [(src, f"batch/{i % 2}/{src.rsplit('/', 1)[-1]}") for i, src in enumerate(sources)]
    results = fs.copy_many(pairs, "put", parallel=6)
    assert [r.ok for r in results] == [True] * len(sources)
    assert [(r.source, r.destination) for r in results] == pairs  # in input order
    assert all(r.attempts == 1 for r in results)
    assert fs.interface.calls["mkdir"] == 2  # once per destination directory, not per file
    assert len(fs.listdir("batch/0")) + len(fs.listdir("batch/1")) == len(sources)
    back = fs.copy_many([(dst, str(tmp_path / "back" / dst)) for _, dst in pairs], "get", parallel=6)
    assert all(r.ok for r in back)
    for src, dst in pairs:
        assert (tmp_path / "back" / dst).read_text() == Path(src).read_text()


def test_failures_are_per_file_and_not_retried_when_permanent(make_fs, sources, tmp_path) -> None:
    fs = make_fs("root")
    pairs = [(sources[0], "p/a.txt"), (str(tmp_path / "missing.txt"), "p/b.txt"), (sources[1], "p/c.txt")]
    with pytest.raises(TransferFailedError, match=r"1 of 3 transfers \(put\)") as info:
        copy_many(fs, pairs, "put")
    results = info.value.results
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, FileNotFoundError) and results[1].attempts == 1
    assert fs.listdir("p") == ["a.txt", "c.txt"]
    assert [r.ok for r in copy_many(fs, pairs, "put", raise_on_failure=False)] == [True, False, True]


def test_remote_to_remote_batch(make_fs, sources) -> None:
    fs = make_fs("dav")
    fs.copy_many([(sources[0], "r/a.txt"), (sources[1], "r/b.txt")])
    results = fs.copy_many([("r/a.txt", "r2/a.txt"), ("r/b.txt", "r2/b.txt")], "remote")
    assert all(r.ok for r in results) and fs.listdir("r2") == ["a.txt", "b.txt"]


def test_collection_fetch_and_upload(make_fs, sources, tmp_path) -> None:
    fs = make_fs("root")
    directory = RemoteDirectoryTarget("outputs", fs=fs)
    targets = [directory.child(f"o{i}.txt") for i in range(5)]
    results = upload(zip(sources[:4], targets[:4], strict=False))
    assert len(results) == 4 and all(r.ok for r in results)
    fetched = fetch(TargetCollection(targets), str(tmp_path / "fetched"))
    assert len(fetched) == 4  # the missing fifth output is skipped
    assert (tmp_path / "fetched" / "outputs" / "o3.txt").read_text() == Path(sources[3]).read_text()
    with pytest.raises(TypeError, match="remote file targets only"):
        fetch([RemoteFileTarget("a", fs=fs), "not a target"], str(tmp_path))


def test_progress_bar_only_when_asked_or_on_a_tty() -> None:
    silent = io.StringIO()
    bar = ProgressBar(3, "put x", stream=silent)  # StringIO is not a TTY
    bar.advance(True)
    bar.close()
    assert silent.getvalue() == ""
    drawn = io.StringIO()
    bar = ProgressBar(2, "put x", stream=drawn, enabled=True)
    bar.advance(True)
    bar.advance(False)
    bar.close()
    assert "2/2" not in drawn.getvalue() and "1/2, 1 failed" in drawn.getvalue()


@pytest.fixture
def plain_interval():
    """``[pylaw] progress_interval`` set to 0 for the test: every change makes a plain line."""
    parser = luigi.configuration.get_config()
    added = not parser.has_section("pylaw")
    if added:
        parser.add_section("pylaw")
    parser.set("pylaw", "progress_interval", "0")
    yield
    parser.remove_option("pylaw", "progress_interval")
    if added:
        parser.remove_section("pylaw")


def drain(fd: int) -> str:
    data = b""
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def test_a_real_batch_transfer_draws_a_bar_on_a_terminal(make_fs, sources, monkeypatch) -> None:
    fs = make_fs("root")
    master, slave = pty.openpty()
    with os.fdopen(slave, "w") as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        results = fs.copy_many([(src, f"bar/{Path(src).name}") for src in sources], "put", parallel=4)
        monkeypatch.undo()
    text = drain(master)
    os.close(master)
    assert all(r.ok for r in results)
    assert re.search(r"\r\x1b\[K(put|\S+) .*\x1b\[32m█+\x1b\[0m 40/40", text), text  # redrawn in place, complete
    assert text.endswith("\n"), "the cursor is left on a fresh line"


def test_a_real_batch_transfer_prints_plain_lines_into_a_pipe(make_fs, sources, monkeypatch, plain_interval) -> None:
    fs = make_fs("root")
    read, write = os.pipe()
    with os.fdopen(write, "w") as pipe:
        monkeypatch.setattr(sys, "stderr", pipe)
        results = fs.copy_many([(src, f"plain/{Path(src).name}") for src in sources], "put", parallel=4)
        monkeypatch.undo()
    text = drain(read)
    os.close(read)
    assert all(r.ok for r in results)
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    assert lines and all(re.fullmatch(rf"put {fs.name}: \d+/40 files", line) for line in lines), lines
    assert lines[-1] == f"put {fs.name}: 40/40 files"
