"""redis-aioredis on Redis Sentinel: the compliance suite through a redis+sentinel:// URL, a
fail-over under load, and the pool and timeout it keeps there."""

from __future__ import annotations

import asyncio
from typing import Any

from opa.testing import make_driver
from opa_driver_redis_aioredis import AioredisDriver
from opa_driver_redis_aioredis.pool import FreeFirstBlockingPool
from opa_driver_redis_aioredis.sentinel import SentinelPool, WatchedSentinelConnection
from opa_redis_common.sentinel_suite import SentinelDriverSuite, sentinel_group


class TestAioredisSentinel(SentinelDriverSuite):
    """The shared Redis and Sentinel cases, through the installed opa.drivers entry point."""

    driver_name = "redis-aioredis"
    distribution = "opa-driver-redis-aioredis"


def test_the_sentinel_client_keeps_the_drivers_pool_and_watch() -> None:
    """Through Sentinel the client sits on the free-first blocking pool, its connections
    watched (redis-py's own socket timeout off); with MAX_CONNECTIONS 1, four commands at
    once all succeed on one connection instead of failing with "Too many connections"."""

    async def scenario(url: str) -> tuple[Any, list[Any]]:
        opts: dict[str, Any] = {"URL": url, "MAX_CONNECTIONS": 1, "SOCKET_TIMEOUT": 5}
        driver = make_driver(AioredisDriver, opts, "cache")
        await driver.connect()
        try:
            pool = driver.instance.connection_pool
            answers = await asyncio.gather(*(driver.instance.echo(f"m{n}") for n in range(4)))
            return pool, answers
        finally:
            await driver.disconnect()

    with sentinel_group(sentinels=1, quorum=1) as group:
        pool, answers = asyncio.run(scenario(group.url))
    assert isinstance(pool, SentinelPool)
    assert isinstance(pool, FreeFirstBlockingPool)
    assert pool.connection_class is WatchedSentinelConnection
    assert pool.connection_kwargs["socket_timeout"] is None
    assert answers == [b"m0", b"m1", b"m2", b"m3"]
