"""The fault proxy itself: a test double for the network must do what the tests rely on."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.faultproxy import FaultProxy


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A TCP echo server on 127.0.0.1 (one thread per connection)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield int(listener.getsockname()[1])
    listener.close()


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def test_latency_delays_each_round_trip_and_keeps_bytes_in_order(echo_port: int) -> None:
    latency = 0.05
    with FaultProxy(echo_port, fraction=0.0, latency=latency) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        messages = [f"request {i};".encode() for i in range(50)]
        start = time.monotonic()
        for message in messages:  # sent back to back: all in flight together
            sock.sendall(message)
        echoed = receive(sock, sum(map(len, messages)))
        elapsed = time.monotonic() - start
    assert echoed == b"".join(messages)
    assert elapsed >= 2 * latency  # one round trip crosses the delay line twice
    assert proxy.stats["ok"] == 1


def test_without_faults_or_latency_bytes_pass_unchanged(echo_port: int) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    with FaultProxy(echo_port, fraction=0.0) as proxy, socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        assert receive(sock, len(payload)) == payload
        sender.join()


def test_drop_closes_the_connection_before_the_server_sees_it(echo_port: int) -> None:
    with FaultProxy(echo_port, fraction=1.0, modes=("drop",)) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.settimeout(5)
        try:
            sock.sendall(b"hello")
            assert sock.recv(16) == b""
        except ConnectionError:
            pass  # a reset is as good as an orderly close
    assert proxy.stats["drop"] == 1


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault modes"):
        FaultProxy(1, modes=("explode",))
