"""A TCP proxy in front of a real backend, which a test can make fail on purpose.

A driver meets outages its backend's own server cannot stage on demand: every connection
dropped at once, or a host that accepts connections and never answers. :class:`TcpProxy`
forwards a port on 127.0.0.1 to the backend and plays those outages, then recovers. It runs
an asyncio loop in a thread of its own, so sync and async clients alike can use it from the
test's thread; every control call returns once the outage is in place, so a test waits for
conditions, never for time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from opa.testing._closing import Closing
from opa.testing._ports import LOCALHOST, _bound_socket

T = TypeVar("T")

CONTROL_TIMEOUT = 10.0
"""How long a control call (start, drop, black hole, restore, close) may take at most."""
CHUNK = 65536


class ProxyMode(StrEnum):
    """What a :class:`TcpProxy` does with connections."""

    FORWARDING = "forwarding"
    """Each connection is forwarded to the backend: the healthy state."""
    DROPPING = "dropping"
    """Each connection is closed at once, as by a server that died and is being restarted."""
    BLACK_HOLE = "black-hole"
    """Connections are accepted and held, and nothing is forwarded: a hung host, a lost link."""


@dataclass(eq=False)
class _Link:
    """One client connection and, once opened, its connection to the backend."""

    task: asyncio.Task[None]
    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def abort(self) -> None:
        """Close both sockets now, and return once they are closed."""
        for writer in self.writers:
            writer.transport.abort()
        for writer in self.writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class TcpProxy(Closing):
    """A port on 127.0.0.1 that forwards to *backend_host*:*backend_port*, and fails on demand.

    Point the client at :attr:`port` (:meth:`url` rewrites a URL to do so), then:

    - :meth:`drop`: every connection is closed, and new ones are closed as soon as they are
      accepted, until :meth:`restore`; as a server that went away.
    - :meth:`black_hole`: open connections stop carrying data, and new ones are accepted and
      never answered, until :meth:`restore`; as a hung host or a lost network path.
    - :meth:`restore`: forward again. Connections held by the black hole are closed, as a long
      partition leaves them; the client has to open new ones, which is what recovery means.

    Use it as a context manager, or call :meth:`close`: every socket it opened is closed.
    """

    def __init__(self, backend_host: str, backend_port: int) -> None:
        self.backend = (backend_host, backend_port)
        self.host = LOCALHOST
        self._mode = ProxyMode.FORWARDING
        self._links: set[_Link] = set()
        self._accepted = 0
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"opa-proxy-{backend_port}", daemon=True
        )
        self._thread.start()
        listener = _bound_socket()
        self.port: int = listener.getsockname()[1]
        try:
            self._server = self._call(asyncio.start_server(self._serve, sock=listener))
        except BaseException:
            listener.close()
            self._stop_loop()
            raise

    # What a test reads.

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) where clients connect."""
        return self.host, self.port

    @property
    def mode(self) -> ProxyMode:
        """What the proxy does with connections now."""
        return self._mode

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran: the proxy forwards nothing more."""
        return self._closed

    @property
    def connections(self) -> int:
        """Client connections open through the proxy right now."""
        count: int = self._call(self._count())
        return count

    @property
    def accepted(self) -> int:
        """Client connections accepted since the proxy started."""
        return self._accepted

    def url(self, url: str) -> str:
        """*url* with its host and port replaced by the proxy's, the rest kept as it was.

        For a URL that names one host (``redis://:pw@127.0.0.1:6379/0``); credentials, path
        and query stay. A URL listing several hosts is refused with a ValueError.
        """
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise ValueError("expected a URL such as scheme://host:port/path")
        authority_end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=-1)
        authority = rest if authority_end < 0 else rest[:authority_end]
        tail = "" if authority_end < 0 else rest[authority_end:]
        userinfo, at, hosts = authority.rpartition("@")
        if "," in hosts:
            raise ValueError("the URL lists several hosts; a proxy stands in for one")
        return f"{scheme}://{userinfo}{at}{self.host}:{self.port}{tail}"

    # What a test does.

    def drop(self) -> None:
        """Close every connection now, and each new one at once, until :meth:`restore`."""
        self._call(self._set_mode(ProxyMode.DROPPING))

    def black_hole(self) -> None:
        """Stop carrying data on every connection, and answer no new one, until :meth:`restore`."""
        self._call(self._set_mode(ProxyMode.BLACK_HOLE))

    def restore(self) -> None:
        """Forward again; connections held by a black hole are closed first."""
        self._call(self._set_mode(ProxyMode.FORWARDING))

    def close(self) -> None:
        """Stop listening and close every connection; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._call(self._shut_down())
        finally:
            self._stop_loop()

    # The loop's side.

    def _call(self, coroutine: Any) -> Any:
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a TcpProxy is controlled from another thread than its own")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(CONTROL_TIMEOUT)
        except FutureTimeout:
            future.cancel()
            raise RuntimeError(
                f"the proxy to {self.backend[0]}:{self.backend[1]} did not act within "
                f"{CONTROL_TIMEOUT:g}s"
            ) from None

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CONTROL_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()

    async def _count(self) -> int:
        return len(self._links)

    async def _set_mode(self, mode: ProxyMode) -> None:
        previous, self._mode = self._mode, mode
        if mode is ProxyMode.DROPPING:
            await self._close_links(self._links)
        elif mode is ProxyMode.BLACK_HOLE:
            for link in self._links:
                link.flowing.clear()
        elif previous is ProxyMode.BLACK_HOLE:
            await self._close_links([link for link in self._links if not link.flowing.is_set()])

    async def _close_links(self, links: Any) -> None:
        tasks = [link.task for link in links]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _shut_down(self) -> None:
        self._server.close()
        await self._close_links(self._links)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        link = _Link(task, writers=[writer])
        self._links.add(link)
        self._accepted += 1
        try:
            if self._mode is ProxyMode.DROPPING:
                return
            if self._mode is ProxyMode.BLACK_HOLE:
                await asyncio.Event().wait()  # held, unanswered, until cancelled
            try:
                backend_reader, backend_writer = await asyncio.open_connection(*self.backend)
            except OSError:
                return  # the backend itself is down: the client sees its connection close
            link.writers.append(backend_writer)
            if self._mode is ProxyMode.FORWARDING:  # a black hole may have begun meanwhile
                link.flowing.set()
            pumps = [
                asyncio.create_task(self._pump(reader, backend_writer, link)),
                asyncio.create_task(self._pump(backend_reader, writer, link)),
            ]
            try:
                # Either side closing ends the link: no protocol here expects a half-close.
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except asyncio.CancelledError:
            pass  # closed by drop(), restore() or close(): the link's own end, not an error
        finally:
            await link.abort()
            self._links.discard(link)

    @staticmethod
    async def _pump(
        source: asyncio.StreamReader, target: asyncio.StreamWriter, link: _Link
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(CHUNK):
                await link.flowing.wait()  # a black hole holds what it read, for good
                target.write(data)
                await target.drain()


def open_sockets() -> int | None:
    """How many sockets this process holds open; None where ``/proc/self/fd`` is missing."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    count = 0
    for name in names:
        with contextlib.suppress(OSError):  # the descriptor of the listing itself is gone
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                count += 1
    return count
