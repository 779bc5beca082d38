"""The test-services helper starts, finds and stops real servers.

Servers are spoken to over raw sockets, so these tests need no client library; the shared
Redis on 6379 is only ever sent PING and SELECT.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

import opa.testing._ports
import opa.testing._services
from opa.testing import PostgresServer, skip_or_fail
from opa.testing._ports import PortTaken, ServiceUnavailable, free_port, port_accepts
from opa.testing._services import RedisServer, TestServices, redis_answers


def redis_command(port: int, *words: str) -> bytes:
    """Send one command to the Redis at 127.0.0.1:port and return its raw (short) reply."""
    request = f"*{len(words)}\r\n".encode()
    for word in words:
        request += f"${len(word)}\r\n{word}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(request)
        return sock.recv(256)


def redis_answers_on_db(url: str) -> bool:
    """True when the Redis in the URL answers PING after SELECTing the URL's database."""
    parts = urlsplit(url)
    assert parts.scheme == "redis" and parts.port is not None
    db = parts.path.strip("/") or "0"
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port), timeout=2) as sock:
        sock.sendall(f"*2\r\n$6\r\nSELECT\r\n${len(db)}\r\n{db}\r\n".encode())
        if not sock.recv(64).startswith(b"+OK"):
            return False
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def test_started_redis_answers_stops_and_restarts_on_the_same_port() -> None:
    """A server from start_redis() answers PING, refuses once stopped, and returns on its port."""
    with TestServices() as services:
        server = services.start_redis()
        assert redis_command(server.port, "PING") == b"+PONG\r\n"
        assert server.url == f"redis://127.0.0.1:{server.port}/0"

        server.stop()
        assert not server.running
        assert not port_accepts(server.port)

        server.start()
        assert server.running
        assert redis_command(server.port, "PING") == b"+PONG\r\n"


def test_a_paused_redis_answers_nothing_until_resumed() -> None:
    """pause() stalls the server (a PING gets no answer), resume() lets it answer."""
    with TestServices() as services:
        server = services.start_redis()
        server.pause()
        assert not redis_answers(server.port, timeout=0.3)
        server.resume()
        assert redis_answers(server.port, timeout=5)


def test_a_killed_redis_exits_without_shutting_down_and_restarts() -> None:
    """kill() is a crash (SIGKILL): the server logs no shutdown, is reaped, refuses on its port,
    and start() brings it back there."""
    with TestServices() as services:
        server = services.start_redis()
        server.kill()
        assert not server.running and server.pid is None
        assert not port_accepts(server.port)
        assert "shutdown" not in (server.folder / "redis.log").read_text().lower()
        server.start()
        assert redis_command(server.port, "PING") == b"+PONG\r\n"


def test_signals_to_a_server_that_died_on_its_own_are_harmless() -> None:
    """A server killed from outside is then paused, resumed and killed again without an error."""
    with TestServices() as services:
        server = services.start_redis()
        pid = server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        server.pause()
        server.resume()
        server.kill()
        assert not server.running


def test_started_redis_keeps_nothing_on_disk() -> None:
    """A started server is told not to save snapshots or an append-only file."""
    with TestServices() as services:
        server = services.start_redis()
        appendonly = redis_command(server.port, "CONFIG", "GET", "appendonly")
        assert appendonly == b"*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"
        save = redis_command(server.port, "CONFIG", "GET", "save")
        assert save == b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n"


def test_redis_url_answers() -> None:
    """redis_url() gives a URL whose server answers on the URL's database, and keeps it."""
    with TestServices() as services:
        url = services.redis_url()
        assert redis_answers_on_db(url)
        assert services.redis_url() == url


def test_redis_url_uses_a_running_server_and_our_own_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Redis already answering on the shared port is used, on database 9 or OPA_TEST_REDIS_DB."""
    with TestServices() as starter:
        running = starter.start_redis()
        monkeypatch.delenv("OPA_TEST_REDIS_DB", raising=False)
        with TestServices(shared_redis_port=running.port) as services:
            assert services.redis_url() == f"redis://127.0.0.1:{running.port}/9"
        monkeypatch.setenv("OPA_TEST_REDIS_DB", "4")
        with TestServices(shared_redis_port=running.port) as services:
            assert services.redis_url() == f"redis://127.0.0.1:{running.port}/4"
        # Closing services that only used the server leaves it running.
        assert running.running


def test_redis_url_starts_a_private_server_when_none_answers() -> None:
    """With nothing on the shared port, redis_url() starts its own server elsewhere."""
    silent_port = free_port()
    with TestServices(shared_redis_port=silent_port) as services:
        port = urlsplit(services.redis_url()).port
        assert port is not None and port != silent_port
        assert redis_command(port, "PING") == b"+PONG\r\n"


def test_close_stops_what_it_started() -> None:
    """close() stops every server it started, so their ports no longer accept connections."""
    services = TestServices(shared_redis_port=free_port())
    private_port = urlsplit(services.redis_url()).port
    restartable = services.start_redis()
    assert private_port is not None
    folders = [restartable.folder]

    services.close()

    assert not port_accepts(private_port)
    assert not port_accepts(restartable.port)
    assert not any(folder.exists() for folder in folders)


def test_redis_server_stop_before_start_is_harmless() -> None:
    """Stopping a server that never started does nothing and raises nothing."""
    server = RedisServer()
    server.stop()
    server.close()
    assert not server.folder.exists()


def test_rabbitmq_url_names_the_port_it_tried() -> None:
    """With nothing on the RabbitMQ port, rabbitmq_url() raises ServiceUnavailable naming it."""
    silent_port = free_port()
    services = TestServices(shared_rabbitmq_port=silent_port)
    with pytest.raises(ServiceUnavailable, match=re.escape(f"127.0.0.1:{silent_port}")):
        services.rabbitmq_url()


def test_mongodb_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPA_TEST_MONGODB_URL, when set, is returned as it is and nothing is started."""
    monkeypatch.setenv("OPA_TEST_MONGODB_URL", "mongodb://db.example:27017/")
    with TestServices() as services:
        assert services.mongodb_url() == "mongodb://db.example:27017/"


@pytest.mark.skipif(
    importlib.util.find_spec("nx_27017") is None, reason="nx-27017 is not installed"
)
def test_mongodb_url_starts_nx_27017(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without OPA_TEST_MONGODB_URL, mongodb_url() starts nx-27017, and close() stops it."""
    monkeypatch.delenv("OPA_TEST_MONGODB_URL", raising=False)
    services = TestServices()
    port = urlsplit(services.mongodb_url()).port
    assert port is not None and port_accepts(port)
    services.close()
    assert not port_accepts(port)


def test_unavailable_service_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Away from CI a missing backend skips its tests."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no broker"):
        skip_or_fail("no broker")


def test_unavailable_service_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under CI=true a missing backend fails its tests instead of skipping them."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no broker"):
        skip_or_fail("no broker")


# --- Ports without a race ------------------------------------------------------------------


@contextmanager
def someone_else_listening() -> Iterator[int]:
    """A port taken by another listener (this process) for the length of the block."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", free_port()))
        other.listen(8)
        yield int(other.getsockname()[1])


def test_a_redis_server_whose_port_is_taken_says_so() -> None:
    """On a port another process holds, redis-server is not taken as ready: PortTaken."""
    with someone_else_listening() as port:
        server = RedisServer(port)
        try:
            with pytest.raises(PortTaken, match=rf"redis-server on port {port} exited"):
                server.start()
        finally:
            server.close()


def test_a_private_redis_moves_to_a_fresh_port_when_its_first_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """start_redis() whose first chosen port is taken meanwhile starts on the next one."""
    real_free_port = opa.testing._ports.free_port
    with someone_else_listening() as taken:
        picks = iter([taken])
        monkeypatch.setattr(
            opa.testing._ports, "free_port", lambda: next(picks, None) or real_free_port()
        )
        with TestServices() as services:
            server = services.start_redis()
            assert next(picks, None) is None, "the taken port was never tried"
            assert server.port != taken
            assert redis_command(server.port, "PING") == b"+PONG\r\n"


def postgres_server(port: int | None = None) -> PostgresServer:
    """A PostgresServer, or a skip (a failure under CI) without the server binaries."""
    try:
        return PostgresServer(port)
    except ServiceUnavailable as error:
        skip_or_fail(str(error))


def postgres_answers(port: int) -> bool:
    """True when a PostgreSQL answers on 127.0.0.1:port: its SSLRequest gets S or N back."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
        return sock.recv(1) in (b"S", b"N")


def test_a_private_postgres_answers_stops_and_restarts_on_the_same_port() -> None:
    """PostgresServer answers the PostgreSQL protocol, refuses once stopped, comes back on its
    port with the cluster it made, and close() removes its folder."""
    server = postgres_server()
    try:
        server.start()
        assert postgres_answers(server.port)
        assert server.url == f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
        made = (server.data / "PG_VERSION").stat().st_mtime_ns

        server.stop()
        assert not server.running
        assert not port_accepts(server.port)

        server.start()
        assert server.running
        assert postgres_answers(server.port)
        assert (server.data / "PG_VERSION").stat().st_mtime_ns == made, "initdb ran again"
    finally:
        server.close()
    assert not server.folder.exists()


def test_a_postgres_server_whose_port_is_taken_says_so() -> None:
    """On a port another process holds, postgres is not taken as ready: PortTaken."""
    with someone_else_listening() as port:
        server = postgres_server(port)
        try:
            with pytest.raises(PortTaken, match=rf"postgres on port {port} exited"):
                server.start()
            assert not server.running
        finally:
            server.close()
