"""The driver's connection pool: redis-py's blocking pool, without a timer for no wait."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.connection import AbstractConnection


class FreeFirstBlockingPool(BlockingConnectionPool):
    """Hands out a free connection at once; only a checkout that must wait sets a timer.

    redis-py's blocking pool arms a ``timeout`` timer for every checkout, even when a
    connection is free and nothing waits: about a tenth of an asyncio client's CPU per
    command (README, "The pool"). Here a checkout that can be served now takes the
    connection under the same condition lock, which an uncontended ``async with`` acquires
    without yielding; any other checkout is redis-py's own, with its timer and
    ``ConnectionError("No connection available.")`` after ``timeout`` seconds.
    """

    async def get_connection(self, *args: Any, **options: Any) -> AbstractConnection:
        # Arguments pass through untouched: redis 5.0 sends the command name, 5.3+ warns
        # about it, so whatever the caller's release gives is what redis-py gets. (redis-py
        # leaves both pool methods below unannotated, hence the two ignores.)
        connection: AbstractConnection
        if self._condition.locked() or not self.can_get_connection():
            wait = super().get_connection(*args, **options)  # type: ignore[no-untyped-call]
            connection = await wait
            return connection
        async with self._condition:
            connection = self.get_available_connection()  # type: ignore[no-untyped-call]
        # As in redis-py: the connection is checked outside the lock, and handed back on
        # any failure, so a broken connection never leaks a slot.
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection
