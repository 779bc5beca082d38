"""The test kit's TCP proxy: forwards, drops, black-holes and restores, and leaks no socket."""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator

import pytest

from opa.testing import TcpProxy, closed_port, open_sockets, wait_for
from tcp_driver import EchoServer

QUIET = 0.3
"""How long a black-holed connection is watched for an answer that must not come."""


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    """A line-echo server for one test."""
    with EchoServer() as server:
        yield server


def connect(proxy: TcpProxy) -> socket.socket:
    """A client connection through *proxy*, with a bound on every read."""
    return socket.create_connection(proxy.address, timeout=5)


def echoes(sock: socket.socket, line: bytes = b"hello") -> bool:
    """True when *line* comes back on *sock*; False when the connection was closed."""
    try:
        sock.sendall(line + b"\n")
        return sock.makefile("rb").readline() == line + b"\n"
    except (ConnectionError, BrokenPipeError):
        return False


def is_closed(sock: socket.socket) -> bool:
    """True when the far end closed *sock*: a read ends at once with EOF or a reset."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_forwards_both_ways(echo: EchoServer) -> None:
    """Bytes go through the proxy to the backend and its answer comes back."""
    with TcpProxy(echo.host, echo.port) as proxy, connect(proxy) as client:
        assert echoes(client)
        assert proxy.connections == 1
        assert proxy.mode == "forwarding"


def test_drop_closes_every_connection_until_restored(echo: EchoServer) -> None:
    """drop() closes the open connections and each new one; restore() forwards again."""
    with TcpProxy(echo.host, echo.port) as proxy:
        with connect(proxy) as first, connect(proxy) as second:
            assert echoes(first) and echoes(second)
            proxy.drop()
            assert proxy.connections == 0
            assert is_closed(first) and is_closed(second)
        with connect(proxy) as during:
            assert is_closed(during)
        proxy.restore()
        with connect(proxy) as after:
            assert echoes(after)


def test_black_hole_accepts_and_never_answers(echo: EchoServer) -> None:
    """In a black hole, open and new connections stay open and get no answer."""
    with TcpProxy(echo.host, echo.port) as proxy, connect(proxy) as held:
        assert echoes(held)
        proxy.black_hole()
        held.settimeout(QUIET)
        held.sendall(b"lost\n")
        with pytest.raises(TimeoutError):
            held.recv(1)
        with connect(proxy) as new:  # the connection itself is accepted
            new.settimeout(QUIET)
            new.sendall(b"lost\n")
            with pytest.raises(TimeoutError):
                new.recv(1)
            assert proxy.connections == 2


def test_restore_after_a_black_hole_closes_the_held_connections(echo: EchoServer) -> None:
    """restore() closes what the black hole held, and new connections are forwarded."""
    with TcpProxy(echo.host, echo.port) as proxy, connect(proxy) as held:
        assert echoes(held)
        proxy.black_hole()
        proxy.restore()
        assert is_closed(held)
        with connect(proxy) as after:
            assert echoes(after)


def test_a_dead_backend_closes_the_client_connection() -> None:
    """When the backend refuses, the client's connection through the proxy is closed."""
    with TcpProxy("127.0.0.1", closed_port()) as proxy, connect(proxy) as client:
        assert is_closed(client)


def test_close_leaves_no_socket_open(echo: EchoServer) -> None:
    """After close() the process holds no more sockets than before the proxy started."""
    before = open_sockets()
    assert before is not None, "this test reads /proc/self/fd"
    proxy = TcpProxy(echo.host, echo.port)
    clients = [connect(proxy) for _ in range(3)]
    assert all(echoes(client) for client in clients)
    proxy.black_hole()
    clients.append(connect(proxy))
    proxy.close()
    proxy.close()  # twice is harmless
    for client in clients:
        client.close()
    # The echo server's handler threads close their side once they read EOF; a handler that
    # ended on a reset leaves its socket to a traceback cycle, which a collection frees.
    wait_for(lambda: gc.collect() >= 0 and open_sockets() == before, 10, "the sockets to close")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:pw@10.0.0.1:6379/0", "redis://:pw@127.0.0.1:{port}/0"),
        ("amqp://guest:guest@rabbit//", "amqp://guest:guest@127.0.0.1:{port}//"),
        ("mongodb://h:27017/db?appname=x", "mongodb://127.0.0.1:{port}/db?appname=x"),
        ("tcp://[::1]:7", "tcp://127.0.0.1:{port}"),
    ],
)
def test_url_points_at_the_proxy(echo: EchoServer, url: str, expected: str) -> None:
    """url() swaps host and port for the proxy's and keeps credentials, path and query."""
    with TcpProxy(echo.host, echo.port) as proxy:
        assert proxy.url(url) == expected.format(port=proxy.port)


@pytest.mark.parametrize("url", ["no-scheme", "mongodb://a:1,b:2/db"])
def test_url_refuses_what_it_cannot_rewrite(echo: EchoServer, url: str) -> None:
    """A URL without a scheme, or with several hosts, is a ValueError saying why."""
    with TcpProxy(echo.host, echo.port) as proxy, pytest.raises(ValueError):
        proxy.url(url)
