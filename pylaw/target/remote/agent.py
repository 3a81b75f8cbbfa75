"""Storage agents: calls that must not, or should not, run in this process run in a fresh one.

Two reasons move a call of a :class:`FileInterface` primitive to an agent: XRootD is not
fork-safe (below), and davs:// is much cheaper in a process whose OpenSSL does not parse
its CA bundle per request (:mod:`pylaw.target.remote.tls`). An agent is a fresh Python
process (started by ``exec``) that runs the same interface (a pickled copy), answers over
a pipe and raises the same errors.

Fork safety for XRootD:

XrdCl (XRootD's client, used by GFAL2's root:// plugin and by the ``XRootD`` bindings)
runs background threads and keeps connections with locked state. A process that used it
and then forks (Luigi forks one process per task with ``--workers N``, a local workflow
forks its branch workers) hands the child a copy of that state without the threads: the
child hangs in a mutex or a condition no thread will ever signal (seen in pylaw's tests:
``XrdCl::FileSystem::Stat`` stuck in ``XRootDTransport::MultiplexSubStream``). XrdCl's own
fork handler (``XRD_RUNFORKHANDLER=1``) is meant to restart it in the child, and in
XRootD 5.5 it sometimes crashes the child inside ``fork()`` instead (seen: a segmentation
fault in a task process before it ran a line of Python). XRootD's developers' advice is to
fork before the library initialises; a pipeline cannot choose when Luigi forks. So:

* the process that first uses XrdCl owns it (:func:`xrdcl_owner`); a forked child never
  calls XrdCl, not even to free what it inherited (the copies are left alone);
* in any other process, every call on a URL the interface marks ``fork_unsafe`` goes to a
  **storage agent**: a fresh Python process (started by ``exec``, so its XrdCl is its own)
  that runs the same interface and answers over a pipe. A process keeps a pool of them,
  one per call in flight (batch transfers stay parallel), each started when needed (60 ms
  on an idle 2-core machine, without Luigi: the interface modules do not import it; a
  call then costs about what it costs in process) and ended when its client process ends (the pipe closes);
* XrdCl's fork handler is off (``XRD_RUNFORKHANDLER=0``, unless the user exported it), as
  nothing after a fork relies on it.

davs:// and https:// calls go to an agent whose OpenSSL trusts the same authorities
without parsing a bundle (:mod:`pylaw.target.remote.tls`), where that can be shown;
``file://``, ``dav://`` and the rest stay in the process.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, TypeVar

from pylaw import processenv
from pylaw.errors import RemoteConnectionError
from pylaw.target.remote.interface import FileInterface, ReadHandle
from pylaw.target.remote.tls import lean_ca_environment

_owner_pid: int | None = None
_owner_lock = threading.Lock()

#: a decorated primitive (:func:`may_run_in_agent` keeps its signature)
Method = TypeVar("Method", bound=Callable[..., Any])


def disable_xrdcl_fork_handler() -> None:
    """Export ``XRD_RUNFORKHANDLER=0`` before XrdCl initialises (a value the user exported wins)."""
    processenv.set_default("XRD_RUNFORKHANDLER", "0")


def xrdcl_owner() -> int | None:
    """The pid of the process of this address space that used XrdCl first (None: not used yet)."""
    return _owner_pid


def may_call_xrdcl() -> bool:
    """True when this process may call XrdCl itself: it owns it, or nobody used it yet (now it does)."""
    global _owner_pid
    with _owner_lock:
        if _owner_pid is None:
            _owner_pid = os.getpid()
        return _owner_pid == os.getpid()


class AgentPool:
    """This process's idle agents of one environment: a call takes one (or starts one) and gives it back.

    Each agent serves every interface, one call at a time; threads share the pool, so a
    batch transfer's threads reuse the agents of the previous batch.
    """

    def __init__(self, environment: Mapping[str, str] | None = None) -> None:
        self.pid = os.getpid()
        self.environment = dict(environment or {})
        self.idle: list[StorageAgent] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def lease(self) -> Iterator[StorageAgent]:
        with self._lock:
            agent = self.idle.pop() if self.idle else None
        if agent is None or not agent.alive():
            agent = StorageAgent(self.environment)
        try:
            yield agent
        finally:
            if agent.alive():
                with self._lock:
                    self.idle.append(agent)

    def close_idle(self) -> None:
        with self._lock:
            idle, self.idle = self.idle, []
        for agent in idle:
            agent.close()


_pools: dict[tuple[int, int], AgentPool] = {}


def pool(environment: Mapping[str, str] | None = None) -> AgentPool:
    """This process's pool of agents with these environment overrides, for its current environment.

    An agent keeps the environment it started with (credentials, ``X509_CERT_DIR``...), so
    a changed ``os.environ`` means new agents; the idle ones of the old one are ended. A
    forked child starts with empty pools: inherited agents are the parent's.
    """
    overrides = dict(environment or {})
    key = (os.getpid(), hash(tuple(sorted({**os.environ, **overrides}.items()))))
    with _owner_lock:
        found = _pools.get(key)
        if found is None:
            for other in [k for k in _pools if k[0] == key[0] and k[1] != key[1]
                          and _pools[k].environment == overrides]:
                _pools.pop(other).close_idle()
            found = _pools[key] = AgentPool(overrides)
        return found


def agent_environment(interface: FileInterface, urls: list[str]) -> dict[str, str] | None:
    """The environment overrides of the agent that must run a call on ``urls``; None: run it here."""
    if any(interface.fork_unsafe(url) for url in urls) and not may_call_xrdcl():
        return {}
    if any(interface.tls_per_request(url) for url in urls):
        return lean_ca_environment()
    return None


def may_run_in_agent(method: Method) -> Method:
    """Decorates a :class:`FileInterface` primitive: it runs in an agent when :func:`agent_environment` says so."""
    @functools.wraps(method)
    def call(self: FileInterface, *args: Any, **kwargs: Any) -> Any:
        environment = agent_environment(self, [a for a in args if isinstance(a, str) and "://" in a])
        if environment is None:
            return method(self, *args, **kwargs)
        with pool(environment).lease() as agent:
            return agent.call(self, method.__name__, args, kwargs)
    return call  # type: ignore[return-value]


class AgentReadHandle(ReadHandle):
    """Offset reads of a file whose calls run in a storage agent: one ``read_range`` call there per block.

    Nothing holds the file open between blocks, so nothing pins its version: readers
    compare its stat after every block (:mod:`pylaw.target.remote.stream`), as over HTTP.
    """

    pins_version = False

    def __init__(self, interface: FileInterface, url: str, timeout: float | None) -> None:
        self.interface, self.url, self.timeout = interface, url, timeout

    def pread(self, offset: int, length: int) -> bytes:
        return self.interface.read_range(self.url, offset, length, self.timeout)


def may_read_in_agent(open_read: Method) -> Method:
    """Decorates ``open_read``: where calls on the URL run in an agent, the handle reads through it."""
    @functools.wraps(open_read)
    def call(self: FileInterface, url: str, timeout: float | None = None) -> ReadHandle:
        if agent_environment(self, [url]) is None:
            return open_read(self, url, timeout)  # type: ignore[no-any-return]
        self.read_range(url, 0, 0, timeout)  # opened once there: a missing file fails now, as in process
        return AgentReadHandle(self, url, timeout)
    return call  # type: ignore[return-value]


# -- the agent: a pipe protocol of length-prefixed pickles ------------------------------------

_LENGTH = struct.Struct("!I")


def _send(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the other end closed the pipe")
    (size,) = _LENGTH.unpack(head)
    return pickle.loads(stream.read(size))


class StorageAgent:
    """A child Python process; :meth:`call` runs one method of an interface there."""

    def __init__(self, environment: Mapping[str, str] | None = None) -> None:
        self.client_pid = os.getpid()
        env = dict(os.environ, **(environment or {}), PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from pylaw.target.remote.agent import main; main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        assert self.process.stdin is not None and self.process.stdout is not None
        self._to, self._from = self.process.stdin, self.process.stdout

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, interface: FileInterface, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``interface.method(*args, **kwargs)`` in the agent; its error is raised here."""
        try:
            _send(self._to, (pickle.dumps(interface), method, args, kwargs))
            ok, value = _receive(self._from)
        except (OSError, EOFError) as exc:
            self.process.kill()  # half a message may be in the pipe: this agent is done
            self.process.wait()
            raise RemoteConnectionError(
                f"the storage agent (pid {self.pid}) of this process ended during {method}: {exc}; "
                "it is restarted on the next call", operation=method) from exc
        if not ok:
            raise value
        return value

    def close(self) -> None:
        self._to.close()
        self.process.wait()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (pylaw's errors do, with their attributes), else a plain RemoteError."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        from pylaw.errors import RemoteError
        return RemoteError(f"{type(exc).__name__}: {exc}")
    return exc


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The agent's loop: answer calls until the pipe closes (interfaces are kept by their pickle)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the client decides
    interfaces: dict[bytes, FileInterface] = {}
    while True:
        try:
            pickled, method, args, kwargs = _receive(requests)
        except EOFError:
            return
        try:
            interface = interfaces.get(pickled)
            if interface is None:
                interface = interfaces[pickled] = pickle.loads(pickled)
            _send(answers, (True, getattr(interface, method)(*args, **kwargs)))
        except Exception as exc:
            _send(answers, (False, _portable(exc)))


def main() -> None:
    """Answers go to a private copy of stdout; fd 1 becomes stderr, so no print can corrupt them."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, answers)

