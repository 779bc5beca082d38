"""The driver's client for a ``redis+sentinel://`` URL: a walrus ``Database`` that asks the
sentinels where the master is, and asks again when it moves.

Imported by ``connect()`` only, so it may import redis at the top.
"""

from __future__ import annotations

import inspect
from typing import Any

import redis
import walrus
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from opa_redis_common import RedisOptions, pool_kwargs
from opa_redis_common.sentinel import (
    ShownByAddress,
    parse_sentinel_url,
    sentinel_manager,
    server_kwargs,
)

# Before redis-py 7.0 the blocking pool's disconnect() takes no argument, and the Sentinel
# pool passes one (inuse_connections=False) when the master moves.
DISCONNECT_TAKES_IN_USE = (
    "inuse_connections" in inspect.signature(redis.BlockingConnectionPool.disconnect).parameters
)


class SentinelBlockingPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """redis-py's Sentinel pool (master discovery, rediscovery when it moves) on its blocking
    pool (a command that finds every connection busy waits, at most ``SOCKET_TIMEOUT``).

    redis-py's own Sentinel pool does not wait: a burst wider than ``MAX_CONNECTIONS`` would
    fail with "Too many connections", an outage error, and trip opa's breaker. Both classes
    are redis-py's public ones and pass their arguments on with ``super()``; a connection
    still checked out when the master moves comes back as one the pool no longer owns, and
    the blocking pool puts an empty slot back for it.
    """

    def disconnect(self, inuse_connections: bool = True) -> None:
        if DISCONNECT_TAKES_IN_USE:
            super().disconnect(inuse_connections)
            return
        # redis-py 5 and 6 can only close them all. When the master moves, those in use were
        # talking to the old one: their command fails as a dropped connection and is retried
        # on the new master, as RETRIES allows.
        super().disconnect()


class SentinelClient(ShownByAddress, redis.Redis):
    """The client of one sentinel, shown as its address in redis-py's errors."""


def sentinel_database(opts: RedisOptions, retry: Retry, errors: list[type[Exception]]) -> Any:
    """A walrus ``Database`` on the master the URL's sentinels name, with the pool options
    of a single server and the driver's *retry* of failed connections."""
    address = parse_sentinel_url(opts.URL)
    # One try per sentinel: a sentinel that does not answer hands over to the next at once.
    sentinel = sentinel_manager(address, opts, (Sentinel, SentinelClient), Retry(NoBackoff(), 0))
    pool = SentinelBlockingPool(  # type: ignore[no-untyped-call]
        address.service,
        sentinel,
        is_master=True,
        retry=retry,
        retry_on_error=errors,
        **pool_kwargs(opts),
        **server_kwargs(address),
    )
    return walrus.Database(connection_pool=pool)


def disconnect_sentinels(pool: SentinelConnectionPool) -> None:
    """Close the pool's connections to the sentinels (the pool closes its own to the master)."""
    for client in pool.sentinel_manager.sentinels:
        client.connection_pool.disconnect()
