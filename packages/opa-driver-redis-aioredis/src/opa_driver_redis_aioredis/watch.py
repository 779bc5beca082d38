"""``SOCKET_TIMEOUT`` with one timer per pool instead of a timer (and a task) per command.

redis-py enforces ``socket_timeout`` on every command: the write goes through
``asyncio.wait_for``, which on Python 3.11 starts a task, and the read sets a timer. With
many commands in flight that was about a quarter of the asyncio client's CPU. Here the
connections run without redis-py's timeout; each command notes when it started, and one
timer, set for the oldest running command's deadline, cuts the connection of any command
still running at its deadline. The cut command raises ``redis.exceptions.TimeoutError``, as
redis-py's own timeout does, and its connection is dropped, so a late reply is never read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.exceptions import TimeoutError

T = TypeVar("T")


class CommandWatch:
    """The running commands of one pool's connections, oldest first, and their one timer."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        # Insertion order is start order: a command is removed when it ends, so the first
        # entry is always the oldest one still running.
        self._started: dict[WatchedConnectionMixin, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def begin(self, connection: WatchedConnectionMixin) -> bool:
        """Start watching a command on *connection*; False if one already is (a health
        check or handshake inside a command is covered by the command's deadline)."""
        if connection in self._started:
            return False
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._move_to(loop)
        now = self._started[connection] = loop.time()
        if self._timer is None:
            self._timer = loop.call_at(now + self.timeout, self._cut_overdue)
        return True

    def end(self, connection: WatchedConnectionMixin) -> None:
        self._started.pop(connection, None)

    def _move_to(self, loop: asyncio.AbstractEventLoop) -> None:
        """Forget the commands and the timer of a loop that no longer runs (its timer
        would never fire, and its connections cannot be used here)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._started.clear()
        self._loop = loop

    def _cut_overdue(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._started:
            connection, started = next(iter(self._started.items()))
            if started + self.timeout > now:
                self._timer = loop.call_at(started + self.timeout, self._cut_overdue)
                return
            del self._started[connection]
            connection.cut()


class WatchedConnectionMixin(AbstractConnection):
    """A redis-py connection whose sends and reads are bounded by its pool's watch.

    ``watch`` comes with the pool's connection arguments; redis-py's ``socket_timeout``
    must be off, or every command would pay for both.
    """

    def __init__(self, *, watch: CommandWatch, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._watch = watch
        self._overdue = False

    def cut(self) -> None:
        """Drop the connection of an overdue command: its send or read fails at once."""
        self._overdue = True
        writer = self._writer  # redis-py's stream writer, set while connected
        if writer is not None:
            writer.transport.abort()

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            # Connecting has its own bound (CONNECT_TIMEOUT); the watch starts after it.
            await self.connect()  # type: ignore[no-untyped-call]
        await self._watched(super().send_packed_command(command, check_health))

    async def read_response(
        self, disable_decoding: bool = False, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        if timeout is not None:
            # The caller's own bound (a pubsub poll): redis-py times that read itself.
            return await super().read_response(disable_decoding, timeout, **kwargs)
        return await self._watched(super().read_response(disable_decoding, None, **kwargs))

    async def _watched(self, operation: Awaitable[T]) -> T:
        """Await a send or a read of this connection under the watch."""
        watching = self._watch.begin(self)
        if watching:
            self._overdue = False
        try:
            return await operation
        except Exception as error:
            self._raise_if_overdue(error)
            raise
        finally:
            if watching:
                self._watch.end(self)
                if self._overdue:
                    # Cut just as the reply came: the reply stands, the connection goes.
                    await self.disconnect(nowait=True)

    def _raise_if_overdue(self, error: Exception) -> None:
        """A cut shows up as a closed connection; it is the timeout redis-py would raise."""
        if self._overdue and not isinstance(error, TimeoutError):
            message = f"Redis did not answer within SOCKET_TIMEOUT ({self._watch.timeout} s)"
            raise TimeoutError(message) from error


class WatchedConnection(WatchedConnectionMixin, Connection):
    """``redis://``"""


class WatchedSSLConnection(WatchedConnectionMixin, SSLConnection):
    """``rediss://``"""


class WatchedUnixConnection(WatchedConnectionMixin, UnixDomainSocketConnection):
    """``unix://``"""


_WATCHED: dict[type[AbstractConnection], type[WatchedConnectionMixin]] = {
    Connection: WatchedConnection,
    SSLConnection: WatchedSSLConnection,
    UnixDomainSocketConnection: WatchedUnixConnection,
}


def watched_url_options(url: str, timeout: float) -> dict[str, Any]:
    """redis-py's connection arguments for *url*, on the watched variant of the connection
    class its scheme takes, with the socket timeout kept by a new watch instead of redis-py:
    *timeout*, unless the URL's query names a ``socket_timeout`` (the URL wins in redis-py)."""
    options: dict[str, Any] = dict(parse_url(url))
    chosen = options.get("connection_class", Connection)
    watch = CommandWatch(options.get("socket_timeout") or timeout)
    options.update(connection_class=_WATCHED[chosen], socket_timeout=None, watch=watch)
    return options
