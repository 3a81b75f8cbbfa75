"""Batch transfers: parallel, one result per file, only failed transfers retried, progress on a TTY."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import sys
import threading
from pathlib import Path

import luigi
import pytest

from pylaw.errors import RemoteFileNotFoundError, TransferFailedError
from pylaw.target.collection import TargetCollection
from pylaw.target.remote.progress import ProgressBar, TransferEvent
from pylaw.target.remote.target import RemoteDirectoryTarget, RemoteFileTarget
from pylaw.target.remote.transfer import copy_many, fetch, upload


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


@pytest.mark.parametrize("backend_name", ["root", "xrdcl", "dav", "nginx", "memory"])
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
    assert [r.ok for r in copy_many(fs, pairs, "put", on_error="collect")] == [True, False, True]


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


def _event(done: int, failed: int, total: int, ok: bool | None = True) -> TransferEvent:
    return TransferEvent("a", "b", ok, 1, 1, done, failed, total, "put x")


def test_progress_bar_only_when_asked_or_on_a_tty() -> None:
    silent = io.StringIO()
    bar = ProgressBar(stream=silent)  # StringIO is not a TTY
    bar(_event(1, 0, 3))
    bar.close()
    assert silent.getvalue() == ""
    drawn = io.StringIO()
    bar = ProgressBar(stream=drawn, enabled=True)
    bar(_event(0, 0, 2, ok=None))  # a start: nothing to draw
    bar(_event(1, 0, 2))
    bar(_event(2, 1, 2, ok=False))
    bar.close()
    assert "2/2" not in drawn.getvalue() and "1/2, 1 failed" in drawn.getvalue()


class Recorder:
    """A progress callback that keeps every event, checking the protocol's promises as they come."""

    def __init__(self) -> None:
        self.events: list[TransferEvent] = []
        self.lock = threading.Lock()
        self.inside = 0

    def __call__(self, event: TransferEvent) -> None:
        assert self.lock.acquire(blocking=False), "the callback was called concurrently"
        try:
            if self.events:
                assert event.files_done >= self.events[-1].files_done
            self.events.append(event)
        finally:
            self.lock.release()


@pytest.mark.parametrize("backend_name", ["root", "davs"])
def test_progress_callback_reports_every_file_and_the_batch(make_fs, sources, tmp_path, backend_name) -> None:
    fs = make_fs(backend_name)
    pairs = [(src, f"prog/{Path(src).name}") for src in sources[:12]]
    pairs.insert(5, (str(tmp_path / "missing.txt"), "prog/missing.txt"))
    recorder = Recorder()
    results = fs.copy_many(pairs, "put", parallel=4, progress=recorder, on_error="collect")
    starts = [e for e in recorder.events if e.ok is None and e.bytes_done == 0]
    ends = [e for e in recorder.events if e.ok is not None]
    assert sorted(e.source for e in starts) == sorted(src for src, _ in pairs)
    assert sorted(e.source for e in ends) == sorted(src for src, _ in pairs)
    assert [e.files_done for e in ends] == list(range(1, len(pairs) + 1))
    assert ends[-1].files_failed == 1 and all(e.files_total == len(pairs) for e in recorder.events)
    for event in ends:
        size = None if event.source.endswith("missing.txt") else Path(event.source).stat().st_size
        assert (event.ok, event.bytes_total, event.bytes_done) == \
            ((False, None, 0) if size is None else (True, size, size))
    assert [r.ok for r in results].count(False) == 1
    recorder = Recorder()
    fs.copy_many([(dst, str(tmp_path / "back" / dst)) for _, dst in pairs if "missing" not in dst], "get",
                 progress=recorder)
    ends = [e for e in recorder.events if e.ok is not None]
    assert all(e.bytes_done == e.bytes_total == Path(tmp_path / "back" / e.source).stat().st_size for e in ends)
    assert all(e.bytes_total is None for e in recorder.events if e.ok is None)  # unknown before a download


@pytest.mark.parametrize("backend_name", ["root", "xrdcl"])
def test_progress_inside_big_files(make_fs, tmp_path, backend_name) -> None:
    """Uploads and downloads of 40 MiB files report bytes moved between each file's start and end: more
    than none, growing, below the size until the end."""
    fs = make_fs(backend_name)
    size = 40 << 20
    sources = []
    for i in range(3):
        sources.append(tmp_path / f"big{i}.bin")
        sources[-1].write_bytes(os.urandom(size))
    for direction, pairs in (("put", [(str(src), f"bytes/{src.name}") for src in sources]),
                             ("get", [(f"bytes/{src.name}", str(tmp_path / "back" / src.name)) for src in sources])):
        recorder = Recorder()
        fs.copy_many(pairs, direction, parallel=3, progress=recorder)
        for source, _ in pairs:
            events = [e for e in recorder.events if e.source == source]
            start, *moved, end = events
            assert (start.ok, start.bytes_done, end.ok, end.bytes_done) == (None, 0, True, size), direction
            assert moved and all(e.ok is None for e in moved), (direction, source)
            done = [e.bytes_done for e in moved]
            assert done == sorted(done) and done[0] > 0 and done[-1] <= size, (direction, done)
    assert all((tmp_path / "back" / src.name).read_bytes() == src.read_bytes() for src in sources)


def test_a_failing_callback_does_not_fail_the_batch(make_fs, sources, caplog) -> None:
    fs = make_fs("root")

    def broken(event: TransferEvent) -> None:
        raise RuntimeError("bar crashed")

    results = fs.copy_many([(src, f"cb/{Path(src).name}") for src in sources[:3]], progress=broken)
    assert all(r.ok for r in results) and "bar crashed" in caplog.text


@pytest.fixture
def with_missing(sources, tmp_path):
    """Eight uploads, the fourth of a missing source."""
    pairs = [(src, f"oe/{Path(src).name}") for src in sources[:8]]
    pairs[3] = (str(tmp_path / "missing.txt"), "oe/missing.txt")
    return pairs


@pytest.mark.parametrize("backend_name", ["root", "xrdcl", "davs"])
def test_on_error_raise_transfers_the_rest_then_raises(make_fs, with_missing, backend_name) -> None:
    fs = make_fs(backend_name)
    with pytest.raises(TransferFailedError, match=r"1 of 8 transfers") as info:
        fs.copy_many(with_missing, "put", parallel=3)
    assert [r.ok for r in info.value.results] == [True] * 3 + [False] + [True] * 4
    assert len(fs.listdir("oe")) == 7


@pytest.mark.parametrize("backend_name", ["root", "davs"])
def test_on_error_collect_returns_the_failures(make_fs, with_missing, tmp_path, backend_name) -> None:
    fs = make_fs(backend_name)
    results = fs.copy_many(with_missing, "put", parallel=3, on_error="collect")
    assert [r.ok for r in results] == [True] * 3 + [False] + [True] * 4
    assert isinstance(results[3].error, FileNotFoundError) and not any(r.skipped for r in results)
    back = fs.copy_many([(dst, str(tmp_path / "b" / Path(dst).name)) for _, dst in with_missing], "get",
                        on_error="collect")
    assert [r.ok for r in back] == [True] * 3 + [False] + [True] * 4
    assert isinstance(back[3].error, RemoteFileNotFoundError) and back[3].attempts == 1


@pytest.mark.parametrize(("backend_name", "direction"), [("root", "put"), ("davs", "put"), ("xrdcl", "get"),
                                                         ("davs", "get")])
def test_on_error_stop_starts_nothing_after_the_first_failure(make_fs, with_missing, tmp_path, backend_name,
                                                             direction) -> None:
    fs = make_fs(backend_name)
    pairs = with_missing
    if direction == "get":
        fs.copy_many([p for p in pairs if "missing" not in p[0]], "put")
        pairs = [(dst, str(tmp_path / "g" / Path(dst).name)) for _, dst in pairs]
    with pytest.raises(TransferFailedError, match="stopped at the first failure, 4 not started") as info:
        fs.copy_many(pairs, direction, parallel=1, on_error="stop")  # one at a time: the order is the input's
    results = info.value.results
    assert [r.ok for r in results] == [True] * 3 + [False] * 5
    assert [r.skipped for r in results] == [False] * 4 + [True] * 4
    assert all(r.attempts == 0 and r.error is None for r in results[4:])
    if direction == "put":
        assert sorted(fs.listdir("oe")) == sorted(Path(dst).name for _, dst in pairs[:3])  # no temporaries
    else:
        assert sorted(p.name for p in (tmp_path / "g").iterdir()) == sorted(Path(d).name for d, _ in pairs[:3])


def test_on_error_is_checked(make_fs, sources) -> None:
    with pytest.raises(ValueError, match="on_error must be one of"):
        make_fs("memory").copy_many([(sources[0], "x")], on_error="ignore")


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
