"""redis-walrus on Redis Sentinel: the compliance suite through a redis+sentinel:// URL, a
fail-over under load, and the pool it builds there."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opa.testing import make_driver
from opa_driver_redis_walrus import WalrusDriver
from opa_driver_redis_walrus.sentinel import SentinelBlockingPool
from opa_redis_common.sentinel_suite import SentinelDriverSuite, sentinel_group


class TestWalrusSentinel(SentinelDriverSuite):
    """The shared Redis and Sentinel cases, through the installed opa.drivers entry point."""

    driver_name = "redis-walrus"
    distribution = "opa-driver-redis-walrus"


def test_a_burst_wider_than_the_pool_waits_for_a_connection() -> None:
    """With MAX_CONNECTIONS 1, four commands at once all succeed on one connection: the
    Sentinel pool blocks as the single-server one does, instead of "Too many connections"."""
    with sentinel_group(sentinels=1, quorum=1) as group:
        opts: dict[str, Any] = {"URL": group.url, "MAX_CONNECTIONS": 1, "SOCKET_TIMEOUT": 5}
        driver = make_driver(WalrusDriver, opts, "cache")
        driver.connect()
        try:
            pool = driver.instance.connection_pool
            assert isinstance(pool, SentinelBlockingPool)
            with ThreadPoolExecutor(4) as threads:
                answers = list(threads.map(lambda n: driver.instance.echo(f"m{n}"), range(4)))
            assert answers == [b"m0", b"m1", b"m2", b"m3"]
        finally:
            driver.disconnect()
