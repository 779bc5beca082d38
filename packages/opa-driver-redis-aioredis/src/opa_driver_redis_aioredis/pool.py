"""A redis-py asyncio pool where a command waits for a free connection.

redis-py's ``ConnectionPool`` fails a command with "Too many connections" once all
``max_connections`` are busy, which turns a burst wider than the pool into errors.
Its ``BlockingConnectionPool`` waits instead, but takes a condition lock and sets a timer
on every checkout and a lock again on every release: about 5 us a command under load
here. This pool puts a semaphore of ``max_connections`` slots in front of the plain pool:
a checkout that finds a slot free costs next to nothing, and one that does not waits for
a release. How long it may wait is the command deadline's business (:mod:`.deadline`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.connection import AbstractConnection, ConnectionPool


class WaitingConnectionPool(ConnectionPool):
    """``ConnectionPool`` whose checkouts beyond ``max_connections`` wait for a release."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = asyncio.Semaphore(self.max_connections)

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        await self._slots.acquire()
        try:
            connection: AbstractConnection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except BaseException:
            self._slots.release()
            raise
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        try:
            await super().release(connection)
        finally:
            self._slots.release()
