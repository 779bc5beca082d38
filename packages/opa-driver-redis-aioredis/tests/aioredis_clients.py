"""Helpers the timeout, watch and pool tests share: a driver-built client, a raw checkout,
and the time a call takes to fail."""

from __future__ import annotations

import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import TimeoutError as RedisTimeoutError

from opa_driver_redis_aioredis import AioredisDriver
from opa_redis_common import RedisOptions

TIMEOUT = 0.3  # SOCKET_TIMEOUT of the tests that wait for it to end something
SLACK = 0.7  # scheduling noise of a busy CI machine, far below any real hang


@asynccontextmanager
async def connected(redis_url: str, **opts: Any) -> AsyncIterator[Redis]:
    """The client the driver builds for *opts*, disconnected on the way out."""
    driver = AioredisDriver("aioredis", RedisOptions(URL=redis_url, **opts))
    await driver.connect()
    try:
        yield driver.get_instance()
    finally:
        await driver.disconnect()


async def checkout(pool: ConnectionPool) -> AbstractConnection:
    """A connection taken from *pool* by hand, as a client would before a command."""
    with warnings.catch_warnings():  # redis 5.0 needs a command name, 5.3+ deprecates it
        warnings.simplefilter("ignore", DeprecationWarning)
        connection: AbstractConnection = await pool.get_connection("GET")
    return connection


async def seconds_until_timeout(
    call: Callable[[], Awaitable[Any]],
    errors: tuple[type[Exception], ...] = (RedisTimeoutError,),
    match: str | None = None,
) -> float:
    """How long *call* took to fail with one of *errors* (whose text matches *match*)."""
    started = time.monotonic()
    with pytest.raises(errors, match=match):
        await call()
    return time.monotonic() - started
