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
from typing import BinaryIO, ClassVar
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
    """A connection to a line-echo server; what ``get_instance`` returns for ``tcp-echo``.

    Safe to share between threads (one call at a time holds the connection), and it
    reconnects by itself on the call after one that broke the connection.
    """

    def __init__(self, address: tuple[str, int], timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._lines: BinaryIO | None = None
        self._open()

    def _open(self) -> tuple[socket.socket, BinaryIO]:
        self._sock = socket.create_connection(self.address, timeout=self.timeout)
        self._lines = self._sock.makefile("rb")
        return self._sock, self._lines

    def echo(self, line: bytes) -> bytes:
        """Send one line and return the line that comes back; ConnectionError when the
        server closed the connection."""
        with self._lock:
            if self._sock is None or self._lines is None:
                sock, lines = self._open()
            else:
                sock, lines = self._sock, self._lines
            try:
                sock.sendall(line + b"\n")
                answer = lines.readline()
                if not answer:
                    raise ConnectionError(f"{self.address[0]}:{self.address[1]} closed")
            except OSError:
                self._close()
                raise
            return answer.rstrip(b"\n")

    def _close(self) -> None:
        if self._lines is not None:
            self._lines.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._lines = None

    def close(self) -> None:
        with self._lock:
            self._close()


class AsyncEchoClient:
    """The asyncio twin of :class:`EchoClient`, for ``tcp-echo-async``: one call at a time,
    each bounded by the timeout, and a fresh connection after a broken one."""

    def __init__(self, address: tuple[str, int], timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def open(self) -> None:
        async with asyncio.timeout(self.timeout):
            self._streams = await asyncio.open_connection(*self.address)

    async def echo(self, line: bytes) -> bytes:
        """Send one line and return the line that comes back."""
        async with self._lock:
            try:
                async with asyncio.timeout(self.timeout):
                    if self._streams is None:
                        self._streams = await asyncio.open_connection(*self.address)
                    reader, writer = self._streams
                    writer.write(line + b"\n")
                    await writer.drain()
                    answer = await reader.readline()
                if not answer:
                    raise ConnectionError(f"{self.address[0]}:{self.address[1]} closed")
            except (OSError, TimeoutError):
                await self._close()
                raise
            return answer.rstrip(b"\n")

    async def _close(self) -> None:
        streams, self._streams = self._streams, None
        if streams is not None:
            streams[1].close()
            # The server may have gone first; the socket is closed either way.
            with contextlib.suppress(OSError):
                await streams[1].wait_closed()

    async def close(self) -> None:
        async with self._lock:
            await self._close()


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
        self.instance = EchoClient(tcp_address(self.opts.URL), self.opts.SOCKET_TIMEOUT)

    def validate(self) -> None:
        host, port = tcp_address(self.opts.URL)
        _check_echo(self.instance.echo(PING), host, port)

    def ping(self) -> None:
        self.validate()

    def disconnect(self) -> None:
        self.instance.close()

    def unavailable_errors(self) -> tuple[type[Exception], ...]:
        return (ConnectionError, TimeoutError)


class BlindTcpEchoDriver(TcpEchoDriver):
    """The sync echo driver with no outage errors: the compliance suite must fail it."""

    name = "tcp-echo-blind"

    def unavailable_errors(self) -> tuple[type[Exception], ...]:
        return ()


class AsyncTcpEchoDriver(Driver):
    """Async driver for a line-echo server."""

    name = "tcp-echo-async"
    is_async = True
    contract_version = 1
    Options: ClassVar[type[BaseModel]] = EchoOptions

    def reachability_targets(self) -> list[tuple[str, int]]:
        return [tcp_address(self.opts.URL)]

    async def connect(self) -> None:
        client = AsyncEchoClient(tcp_address(self.opts.URL), self.opts.SOCKET_TIMEOUT)
        await client.open()
        self.instance = client

    async def validate(self) -> None:
        host, port = tcp_address(self.opts.URL)
        _check_echo(await self.instance.echo(PING), host, port)

    async def ping(self) -> None:
        await self.validate()

    async def disconnect(self) -> None:
        await self.instance.close()

    def unavailable_errors(self) -> tuple[type[Exception], ...]:
        return (ConnectionError, TimeoutError)


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
