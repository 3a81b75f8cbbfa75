"""XrdCl after fork: forked processes reach root:// storage through an agent, with the same answers.

The hazard is real here: with XrdCl's fork handler off (pylaw's setting), a forked child
that calls XrdCl inherited from its parent waits forever (first test). Everything else
checks that pylaw's way around it answers exactly as the in-process path does.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pylaw.errors import RemoteFileChangedError, RemoteFileNotFoundError, RemoteNotADirectoryError
from pylaw.target.remote import agent as agents
from pylaw.target.remote.contract import pattern
from pylaw.target.remote.interface import FileInterface
from tests.remote.readops import random_read_answers

XRDCL_BACKENDS = ["root", "xrdcl"]
BLOCK = 32 << 10


_job: Any = None  # the function a forked child runs (inherited through fork: closures do not pickle)


def _run_job() -> Any:
    return _job()


def _in_child(function: Any, timeout: float = 60) -> Any:
    """Run ``function()`` in a forked child; its result, or an AssertionError naming a hang."""
    global _job
    _job = function
    with multiprocessing.get_context("fork").Pool(1) as pool:
        result = pool.apply_async(_run_job)
        try:
            return result.get(timeout)
        except multiprocessing.TimeoutError:
            raise AssertionError(f"the forked child hung for {timeout} s") from None


@pytest.mark.parametrize("backend_name", XRDCL_BACKENDS)
def test_premise_a_forked_child_calling_inherited_xrdcl_hangs(make_fs, backend_name) -> None:
    """Why the agent exists (if XrdCl ever becomes fork-safe, this fails and the agent can go)."""
    fs = make_fs(backend_name)
    fs.mkdir("d")
    url = fs.url("/d")
    raw = fs.interface
    method = type(raw).listdir.__wrapped__  # the primitive itself, without the agent
    raw.listdir(url)  # this process now runs XrdCl
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        method(raw, url)
        os._exit(0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.waitpid(pid, os.WNOHANG) == (0, 0):
        time.sleep(0.1)
    ended = os.waitpid(pid, os.WNOHANG) != (0, 0)
    if not ended:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert not ended, "a forked child used inherited XrdCl state and did not hang: is the agent still needed?"


@pytest.mark.parametrize("backend_name", XRDCL_BACKENDS)
def test_forked_child_gets_the_same_answers_from_an_agent(make_fs, backend_name, tmp_path) -> None:
    fs = make_fs(backend_name)
    fs.mkdir("d")
    for i in range(3):
        _put(fs, tmp_path, f"d/f{i}.txt", i)
    in_parent = (sorted(fs.listdir("d")), fs.stat("d/f2.txt").size)
    assert agents.xrdcl_owner() == os.getpid()

    def child() -> tuple[Any, ...]:
        source = tmp_path / f"from-child-{os.getpid()}.txt"
        source.write_bytes(b"child")
        fs.interface.copy(f"file://{source}", fs.url("/d/child.txt"))
        answers = (sorted(fs.listdir("d")), fs.stat("d/f2.txt").size)
        return os.getpid(), agents.pool().idle[0].pid, answers

    child_pid, agent_pid, in_child = _in_child(child)
    assert in_child == (sorted([*in_parent[0], "child.txt"]), in_parent[1])
    assert len({os.getpid(), child_pid, agent_pid}) == 3  # the child asked a third process
    assert fs.stat("d/child.txt").size == 5  # what the child wrote through its agent is there


def _put(fs: Any, tmp_path: Any, path: str, size: int) -> None:
    local = tmp_path / f"put-{size}.txt"
    local.write_bytes(b"x" * size)
    fs.interface.copy(f"file://{local}", fs.url("/" + path))


def test_davs_calls_stay_in_the_forked_process(make_fs) -> None:
    fs = make_fs("dav")
    fs.mkdir("d")

    def child() -> tuple[list[str], bool]:
        names = fs.listdir("d")
        return names, bool(agents.pool().idle)

    names, agent_started = _in_child(child)
    assert names == [] and not agent_started


def _outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except Exception as exc:
        return type(exc).__name__, (str(exc), getattr(exc, "url", None), getattr(exc, "operation", None))


@pytest.mark.parametrize("backend_name", XRDCL_BACKENDS)
def test_agent_answers_as_the_interface_does(make_fs, backend_name, tmp_path) -> None:
    """Every primitive, with good and bad arguments, through the agent and in process: same results."""
    fs = make_fs(backend_name)
    interface: FileInterface = fs.interface
    local = tmp_path / "payload.bin"
    local.write_bytes(os.urandom(70_000))
    base = fs.url("/cmp")
    interface.mkdir(base)
    interface.copy(f"file://{local}", f"{base}/a.bin")
    interface.mkdir(f"{base}/sub")
    cases: list[tuple[str, tuple[Any, ...]]] = [
        ("stat", (f"{base}/a.bin",)), ("stat", (f"{base}/sub",)), ("stat", (f"{base}/missing",)),
        ("listdir", (base,)), ("listdir", (f"{base}/a.bin",)), ("listdir", (f"{base}/missing",)),
        ("listdir_stat", (base,)), ("exists", (f"{base}/a.bin",)), ("exists", (f"{base}/nope",)),
        ("checksum", (f"{base}/a.bin", "adler32")), ("checksum", (f"{base}/a.bin", "md5")),
        ("checksum", (f"{base}/missing", "adler32")), ("unlink", (f"{base}/missing",)),
        ("rmdir", (f"{base}/missing",)), ("rename", (f"{base}/missing", f"{base}/other")),
        ("copy", (f"{base}/missing", f"file://{tmp_path}/never")),
        ("read_range", (f"{base}/a.bin", 100, 5000)), ("read_range", (f"{base}/a.bin", 69_990, 100)),
        ("read_range", (f"{base}/a.bin", 80_000, 10)), ("read_range", (f"{base}/a.bin", 0, 0)),
        ("read_range", (f"{base}/missing", 0, 0)), ("read_range", (f"{base}/sub", 0, 10)),
    ]
    agent = agents.StorageAgent()
    try:
        for method, args in cases:
            primitive = getattr(type(interface), method)
            primitive = getattr(primitive, "__wrapped__", primitive)  # in this process, without the agent
            direct = _outcome(lambda p=primitive, a=args: p(interface, *a))
            remote = _outcome(lambda m=method, a=args: agent.call(interface, m, a, {}))
            assert remote == direct, (method, args)
        errors = {name for name, _ in (_outcome(lambda m=m, a=a: agent.call(interface, m, a, {}))
                                       for m, a in cases)} - {"ok"}
        assert {RemoteFileNotFoundError.__name__, RemoteNotADirectoryError.__name__} <= errors
    finally:
        agent.close()


@pytest.mark.parametrize("backend_name", XRDCL_BACKENDS)
def test_a_killed_agent_is_replaced(make_fs, backend_name) -> None:
    fs = make_fs(backend_name)
    fs.mkdir("k")
    fs.listdir("k")

    def child() -> tuple[int, int, list[str]]:
        fs.listdir("k")
        (first,) = agents.pool().idle
        os.kill(first.pid, signal.SIGKILL)
        first.process.wait()
        names = fs.listdir("k")  # the dead agent is never leased again: a new one answers
        return first.pid, agents.pool().idle[0].pid, names

    first, second, names = _in_child(child)
    assert first != second and names == []


@pytest.mark.parametrize("backend_name", XRDCL_BACKENDS)
def test_a_forked_child_streams_through_its_agent(make_fs, backend_name, tmp_path) -> None:
    """open("rb") in a forked child reads blocks through the agent: the in-process stream's answers,
    a missing file's error, and a file replaced between two blocks detected, not mixed."""
    fs = make_fs(backend_name)
    data = b"".join(pattern(random.Random(i).randrange(1, 3 * BLOCK), seed=i) + b"\n" for i in range(12))
    (tmp_path / "r.bin").write_bytes(data)
    fs.put(str(tmp_path / "r.bin"), "/s/r.bin")
    with fs.open("/s/r.bin", "rb", block_size=BLOCK) as f:
        in_parent = random_read_answers(f, len(data), BLOCK)
    (tmp_path / "other.bin").write_bytes(pattern(BLOCK // 2, seed=99))

    def child() -> tuple[Any, ...]:
        with fs.open("/s/r.bin", "rb", block_size=BLOCK) as f:
            answers = random_read_answers(f, len(data), BLOCK)
        missing = _outcome(lambda: fs.open("/s/nope.bin", "rb"))[0]
        with fs.open("/s/r.bin", "rb", block_size=BLOCK) as f:
            first = f.read(BLOCK)
            fs.put(str(tmp_path / "other.bin"), "/s/r.bin")
            replaced = _outcome(lambda: f.read(BLOCK))[0]
        return answers, missing, first, replaced, {agent.pid for agent in agents.pool().idle}

    answers, missing, first, replaced, agent_pids = _in_child(child)
    assert answers == in_parent == random_read_answers(io.BytesIO(data), len(data), BLOCK)
    assert missing == RemoteFileNotFoundError.__name__
    assert first == data[:BLOCK] and replaced == RemoteFileChangedError.__name__
    assert agent_pids and os.getpid() not in agent_pids


def test_threads_share_the_agents_of_their_process(make_fs) -> None:
    """A batch's threads lease agents from one pool: the next batch's new threads start none."""
    fs = make_fs("root")
    fs.mkdir("t")
    fs.listdir("t")

    def child() -> tuple[set[int], set[int]]:
        rounds = []
        for _ in range(2):
            with ThreadPoolExecutor(4) as threads:  # new threads each round, as in batch transfers
                list(threads.map(lambda _: fs.listdir("t"), range(16)))
            rounds.append({agent.pid for agent in agents.pool().idle})
        return rounds[0], rounds[1]

    first, second = _in_child(child)
    assert 1 <= len(first) <= 4 and second == first
