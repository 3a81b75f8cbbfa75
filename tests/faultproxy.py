"""A TCP proxy that drops, cuts or delays a configurable fraction of connections.

Put it in front of a real server (xrootd, WebDAV) to test what clients do when the
network misbehaves::

    with FaultProxy(upstream_port=1094, fraction=0.2, seed=1) as proxy:
        url = f"root://127.0.0.1:{proxy.port}//data"

Each accepted connection independently suffers, with probability ``fraction``, one of
``modes``:

- ``drop``: closed at once, before any byte reaches the server;
- ``cut``: relayed, then both sides closed after a random number of bytes
  (mid-request or mid-transfer: the case that could leave partial files);
- ``delay``: relayed after ``delay`` seconds of silence.

Clients that keep one connection open for everything (XrdCl does) would see almost no
faults that way, so ``per_request`` applies the same draw to every request a client sends
on an established connection too: the first bytes the client sends after the server has
answered count as a new request (a ``drop`` then closes the connection before they reach
the server).

``latency`` (seconds) delays every byte by that much in each direction, as a wide-area
link does (a round trip then costs ``2 * latency``); bytes stay in order and requests sent
back to back stay in flight together, so it shows what pipelining and parallel transfers
gain against a distant storage element.

Counters in ``stats`` let a test check that faults really happened.
"""

from __future__ import annotations

import contextlib
import queue
import random
import socket
import threading
import time
from collections import Counter

MODES = ("drop", "cut", "delay")


class FaultProxy:
    """Listen on 127.0.0.1:``port`` and forward to 127.0.0.1:``upstream_port`` with injected faults."""

    def __init__(self, upstream_port: int, fraction: float = 0.2, modes: tuple[str, ...] = MODES,
                 delay: float = 0.2, max_cut_bytes: int = 4096, seed: int | None = None,
                 per_request: bool = False, latency: float = 0.0) -> None:
        unknown = set(modes) - set(MODES)
        if unknown:
            raise ValueError(f"unknown fault modes {sorted(unknown)}; choose from {MODES}")
        self.upstream_port = upstream_port
        self.fraction = fraction
        self.modes = modes
        self.delay = delay
        self.max_cut_bytes = max_cut_bytes
        self.per_request = per_request
        self.latency = latency
        self.stats: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # close() does not wake a blocked accept(): poll instead
        self.port = int(self._listener.getsockname()[1])
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FaultProxy:
        return self.__enter__()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _choose(self) -> tuple[str, int]:
        with self._lock:
            if self._rng.random() >= self.fraction:
                return "ok", 0
            return self._rng.choice(self.modes), self._rng.randint(0, self.max_cut_bytes)

    def _count(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self.stats[key] += 1

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            fault, budget = self._choose()
            self._count("connections", fault)
            if fault == "drop":
                _close(client)
                continue
            threading.Thread(target=self._serve, args=(client, fault, budget), daemon=True).start()

    def _serve(self, client: socket.socket, fault: str, budget: int) -> None:
        if fault == "delay":
            self._stopping.wait(self.delay)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            _close(client)
            return
        upstream.settimeout(None)
        # forward every chunk at once, as the endpoints' own sockets do (XrdCl sets TCP_NODELAY):
        # with Nagle on the proxy's sockets a request written in two parts waited for the
        # server's delayed ACK (40 ms per checksum query through the delay line)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # one shared budget for both directions: a cut can hit a request or a response
        remaining = [budget] if fault == "cut" else None
        turn = threading.Event()  # set when the server answered: the client's next bytes are a new request
        turn.set()
        links = [_DelayLine(upstream, self.latency), _DelayLine(client, self.latency)] if self.latency > 0 \
            else [_Direct(upstream), _Direct(client)]
        pumps = [threading.Thread(target=self._pump, args=(client, links[0], remaining, turn, True), daemon=True),
                 threading.Thread(target=self._pump, args=(upstream, links[1], remaining, turn, False),
                                  daemon=True)]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        for link in links:
            link.join()
        _close(client)
        _close(upstream)

    def _pump(self, source: socket.socket, sink: _Direct, remaining: list[int] | None,
              turn: threading.Event, from_client: bool) -> None:
        """Copy bytes one way until EOF, an error, a fault or the cut budget; then close both."""
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if not from_client:
                    turn.set()
                elif self.per_request and turn.is_set():
                    turn.clear()
                    fault, budget = self._choose()
                    if fault != "ok":
                        self._count("requests", f"request_{fault}")
                    if fault == "delay":
                        self._stopping.wait(self.delay)
                    elif fault != "ok":
                        sink.send(data[: budget if fault == "cut" else 0])
                        break
                if remaining is not None:
                    with self._lock:
                        allowed = min(len(data), remaining[0])
                        remaining[0] -= allowed
                    if allowed < len(data):
                        sink.send(data[:allowed])
                        break
                sink.send(data)
        except OSError:
            pass
        _close(source)
        sink.close()


class _Direct:
    """Forward bytes to ``sock`` at once."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        _close(self.sock)

    def join(self) -> None:
        pass


class _DelayLine(_Direct):
    """Forward bytes to ``sock`` ``latency`` seconds after they arrived, in order, without blocking the reader."""

    def __init__(self, sock: socket.socket, latency: float) -> None:
        super().__init__(sock)
        self.latency = latency
        self.queue: queue.SimpleQueue[tuple[float, bytes | None]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._deliver, daemon=True)
        self.thread.start()

    def send(self, data: bytes) -> None:
        self.queue.put((time.monotonic() + self.latency, data))

    def close(self) -> None:
        self.queue.put((time.monotonic() + self.latency, None))

    def join(self) -> None:
        self.thread.join()

    def _deliver(self) -> None:
        while True:
            due, data = self.queue.get()
            time.sleep(max(0.0, due - time.monotonic()))
            if data is None:
                break
            try:
                self.sock.sendall(data)
            except OSError:
                break
        _close(self.sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
