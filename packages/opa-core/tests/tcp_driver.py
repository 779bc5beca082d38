"""A tiny real driver pair and a real server, so core's tests exercise drivers end to end.

``tcp-echo`` (sync) and ``tcp-echo-async`` talk to a line-echo server at ``tcp://host:port``:
``validate`` and ``ping`` send ``ping`` and expect it back. :class:`EchoServer` runs such a
server on a free 127.0.0.1 port in a background thread; ``stall()`` makes it hold every line
unanswered, as a SIGSTOPped server would, and ``resume()`` answers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import threading
from types import TracebackType
from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opa import Driver

PING = b"ping"


def tcp_address(url: str) -> tuple[str, int]:
    """(host, port) of a ``tcp://host:port`` URL; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        raise ValueError("expected tcp://host:port")
    return parts.hostname, parts.port


class EchoOptions(BaseModel):
    """OPTS of both echo drivers."""

    model_config = ConfigDict(extra="forbid")

    URL: str
    SOCKET_TIMEOUT: float = Field(default=2.0, gt=0)

    @field_validator("URL")
    @classmethod
    def _is_tcp_url(cls, value: str) -> str:
        tcp_address(value)
        return value


def _check_echo(answer: bytes, host: str, port: int) -> None:
    if answer != PING:
        raise ConnectionError(f"{host}:{port} answered {answer!r} instead of echoing {PING!r}")


class EchoClient:
    """A connection to a line-echo server; what ``get_instance`` returns for ``tcp-echo``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lines = sock.makefile("rb")

    def echo(self, line: bytes) -> bytes:
        """Send one line and return the line that comes back."""
        self.sock.sendall(line + b"\n")
        return self._lines.readline().rstrip(b"\n")

    def close(self) -> None:
        self._lines.close()
        self.sock.close()


class AsyncEchoClient:
    """The asyncio twin of :class:`EchoClient`, for ``tcp-echo-async``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def echo(self, line: bytes) -> bytes:
        """Send one line and return the line that comes back."""
        self.writer.write(line + b"\n")
        await self.writer.drain()
        return (await self.reader.readline()).rstrip(b"\n")

    async def close(self) -> None:
        self.writer.close()
        # The server may have gone first; the socket is closed either way.
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class TcpEchoDriver(Driver):
    """Sync driver for a line-echo server."""

    name = "tcp-echo"
    is_async = False
    contract_version = 1
    Options: ClassVar[type[BaseModel]] = EchoOptions

    def reachability_targets(self) -> list[tuple[str, int]]:
        # "tcp" has no default port to declare in default_ports, so say where the server is.
        return [tcp_address(self.opts.URL)]

    def connect(self) -> None:
        host, port = tcp_address(self.opts.URL)
        sock = socket.create_connection((host, port), timeout=self.opts.SOCKET_TIMEOUT)
        self.instance = EchoClient(sock)

    def validate(self) -> None:
        host, port = tcp_address(self.opts.URL)
        _check_echo(self.instance.echo(PING), host, port)

    def ping(self) -> None:
        self.validate()

    def disconnect(self) -> None:
        self.instance.close()


class AsyncTcpEchoDriver(Driver):
    """Async driver for a line-echo server."""

    name = "tcp-echo-async"
    is_async = True
    contract_version = 1
    Options: ClassVar[type[BaseModel]] = EchoOptions

    def reachability_targets(self) -> list[tuple[str, int]]:
        return [tcp_address(self.opts.URL)]

    async def connect(self) -> None:
        host, port = tcp_address(self.opts.URL)
        async with asyncio.timeout(self.opts.SOCKET_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
        self.instance = AsyncEchoClient(reader, writer)

    async def validate(self) -> None:
        host, port = tcp_address(self.opts.URL)
        async with asyncio.timeout(self.opts.SOCKET_TIMEOUT):
            _check_echo(await self.instance.echo(PING), host, port)

    async def ping(self) -> None:
        await self.validate()

    async def disconnect(self) -> None:
        await self.instance.close()


class _EchoHandler(socketserver.StreamRequestHandler):
    server: _ThreadedServer

    def handle(self) -> None:
        for line in self.rfile:
            self.server.answering.wait()  # a stalled server holds each line, as SIGSTOP would
            self.wfile.write(line)
            self.wfile.flush()


class _ThreadedServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    answering: threading.Event


class EchoServer:
    """A real line-echo server on a free 127.0.0.1 port, served from a background thread.

    Use it as a context manager; leaving the block stops it.
    """

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self._server = _ThreadedServer((self.host, 0), _EchoHandler)
        self._server.answering = threading.Event()
        self._server.answering.set()
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="echo-server", daemon=True
        )

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def stall(self) -> None:
        """Keep accepting connections and reading lines, but answer none (a stalled host)."""
        self._server.answering.clear()

    def resume(self) -> None:
        """Answer again, the held lines first."""
        self._server.answering.set()

    def __enter__(self) -> EchoServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.resume()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
