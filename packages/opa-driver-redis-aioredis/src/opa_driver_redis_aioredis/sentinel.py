"""The driver's client for a ``redis+sentinel://`` URL: a ``redis.asyncio.Redis`` that asks
the sentinels where the master is, and asks again when it moves.

It keeps the single-server client's pool and timeout: the checkout of
``FreeFirstBlockingPool`` (``pool.py``) and ``SOCKET_TIMEOUT`` kept by the pool's watch
(``watch.py``), under redis-py's Sentinel pool and connection, which find the master.
Imported by ``connect()`` only, so it may import redis at the top.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import NoBackoff

from opa_driver_redis_aioredis.pool import FreeFirstBlockingPool
from opa_driver_redis_aioredis.watch import CommandWatch, WatchedConnectionMixin
from opa_redis_common import RedisOptions, pool_kwargs
from opa_redis_common.sentinel import (
    ShownByAddress,
    parse_sentinel_url,
    sentinel_manager,
    server_kwargs,
)


class SentinelPool(SentinelConnectionPool, FreeFirstBlockingPool):
    """redis-py's Sentinel pool (master discovery, rediscovery when it moves) on the driver's
    blocking pool (a checkout that finds every connection busy waits, at most
    ``SOCKET_TIMEOUT``; a free one is handed out without a timer).

    redis-py's own Sentinel pool does not wait: a burst wider than ``MAX_CONNECTIONS`` would
    fail with "Too many connections", an outage error, and trip opa's breaker. Both bases
    pass their arguments on with ``super()``; the asyncio pools count the connections in
    use, so one still checked out when the master moves gives its slot back on release.
    """


class WatchedSentinelConnection(WatchedConnectionMixin, SentinelManagedConnection):
    """A Sentinel-managed connection whose sends and reads the pool's watch bounds."""


class SentinelClient(ShownByAddress, Redis):  # type: ignore[misc]
    """The client of one sentinel, shown as its address in redis-py's errors."""


def sentinel_client(opts: RedisOptions, retry: Retry, errors: list[type[Exception]]) -> Redis:
    """A client of the master the URL's sentinels name, with the pool options of a single
    server and the driver's *retry* of failed connections."""
    address = parse_sentinel_url(opts.URL)
    # One try per sentinel: a sentinel that does not answer hands over to the next at once.
    sentinel = sentinel_manager(address, opts, (Sentinel, SentinelClient), Retry(NoBackoff(), 0))
    # The watch keeps SOCKET_TIMEOUT (watch.py), so redis-py's is off.
    watched = {
        "connection_class": WatchedSentinelConnection,
        "socket_timeout": None,
        "watch": CommandWatch(opts.SOCKET_TIMEOUT),
    }
    connection = pool_kwargs(opts) | server_kwargs(address) | watched
    pool = SentinelPool(  # type: ignore[no-untyped-call]
        address.service, sentinel, is_master=True, retry=retry, retry_on_error=errors, **connection
    )
    return Redis(connection_pool=pool)


async def disconnect_sentinels(pool: SentinelConnectionPool) -> None:
    """Close the pool's connections to the sentinels (the pool closes its own to the master)."""
    for client in pool.sentinel_manager.sentinels:
        await client.connection_pool.aclose()
