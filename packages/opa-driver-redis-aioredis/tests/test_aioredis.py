"""redis-aioredis against a real Redis: the client it hands out, its pool, and concurrency."""

from __future__ import annotations

import asyncio
import importlib.metadata
import secrets
import time

import redis

from opa_driver_redis_aioredis import AioredisDriver
from opa_redis_common import RedisOptions


def test_no_aioredis_distribution_is_needed() -> None:
    """The driver needs redis-py alone; the archived aioredis package is no requirement."""
    requires = importlib.metadata.requires("opa-driver-redis-aioredis") or []
    assert not [req for req in requires if req.lower().startswith("aioredis")]


def test_gathered_increments_wider_than_the_pool_all_land(
    redis_url: str, redis_prefix: str
) -> None:
    """500 increments gathered on a pool of 4 connections queue for a connection: all land."""
    key = f"{redis_prefix}counter"

    async def count() -> int:
        driver = AioredisDriver("aioredis", RedisOptions(URL=redis_url, MAX_CONNECTIONS=4))
        await driver.connect()
        try:
            client = driver.get_instance()
            await asyncio.gather(*(client.incr(key) for _ in range(500)))
            return int(await client.get(key))
        finally:
            await driver.disconnect()

    assert asyncio.run(count()) == 500


def test_disconnect_closes_every_connection(redis_url: str) -> None:
    """After disconnect() the server lists no connection of the driver: none is left open."""
    name = f"opa-test-{secrets.token_hex(4)}"

    async def use_then_disconnect() -> None:
        driver = AioredisDriver("aioredis", RedisOptions(URL=redis_url, CLIENT_NAME=name))
        await driver.connect()
        client = driver.get_instance()
        await asyncio.gather(*(client.ping() for _ in range(5)))
        await driver.disconnect()

    asyncio.run(use_then_disconnect())
    with redis.Redis.from_url(redis_url) as observer:
        deadline = time.monotonic() + 2
        while any(c["name"] == name for c in observer.client_list()):
            assert time.monotonic() < deadline, "the driver's connections stayed open"
            time.sleep(0.05)


def test_a_url_without_a_port_is_checked_on_6379() -> None:
    """The driver declares Redis's port for both schemes, so LOAD auto probes cache:6379."""
    for scheme in ("redis", "rediss"):
        driver = AioredisDriver("cache", RedisOptions(URL=f"{scheme}://cache/0"))
        assert driver.reachability_targets() == [("cache", 6379)]


def test_the_old_import_path_still_gives_the_driver() -> None:
    """`from opa.plugins.driver_redis import Aioredis`, as opa-stack users wrote it, works."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from opa.plugins.driver_redis import Aioredis
    assert Aioredis is AioredisDriver
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
