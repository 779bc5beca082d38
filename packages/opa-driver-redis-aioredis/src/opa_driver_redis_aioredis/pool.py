"""The driver's connection pool: redis-py's blocking pool, without a timer for no wait."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.connection import AbstractConnection


class FreeFirstBlockingPool(BlockingConnectionPool):
    """Hands out a free connection at once; only a checkout that must wait sets a timer.

    redis-py's blocking pool arms a ``timeout`` timer for every checkout, even when a
    connection is free and nothing waits: about a tenth of an asyncio client's CPU per
    command with many in flight (README, "The pool"). Here a checkout that finds a free
    connection takes it under the same condition lock, which an uncontended ``async with``
    acquires without yielding; any other checkout is redis-py's own, with its timer and
    ``ConnectionError("No connection available.")`` after ``timeout`` seconds.

    While redis-py 8.1+ applies a maintenance notification (RESP3: the server moves), its
    checkout also takes the pool's lock, under which it rewrites the connections; every
    checkout then is redis-py's own.
    """

    async def get_connection(self, *args: Any, **options: Any) -> AbstractConnection:
        # Arguments pass through untouched: redis 5.0 sends the command name, 5.3+ warns
        # about it, so whatever the caller's release gives is what redis-py gets.
        connection: AbstractConnection | None = None
        in_maintenance = getattr(self, "_in_maintenance", False)  # redis 8.1+ only
        if not in_maintenance and not self._condition.locked() and self.can_get_connection():
            async with self._condition:
                # Asked again under the lock: taking it can yield to a task queued for it,
                # which may take the last free connection first.
                if self.can_get_connection():
                    connection = self.get_available_connection()  # type: ignore[no-untyped-call]
        if connection is None:
            wait = super().get_connection(*args, **options)  # type: ignore[no-untyped-call]
            waited: AbstractConnection = await wait
            return waited
        # As in redis-py: the connection is checked outside the lock, and handed back on
        # any failure, so a broken connection never leaks a slot.
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection
