"""opa's ``redis-aioredis`` driver: each component is a ``redis.asyncio.Redis`` client.

The archived aioredis package cannot even be imported on Python 3.11 or later; its code
lives on in redis-py as ``redis.asyncio``, which this driver uses. The driver keeps the name
``redis-aioredis`` so that existing configuration works unchanged. With ``CLUSTER: true`` the
component is a Redis Cluster's client instead (``cluster.py``).

This module is what the ``opa.drivers`` entry point loads, so it stays cheap: redis is
imported on ``connect()``, never when the driver is merely installed or looked up.
"""

from __future__ import annotations

from opa import Driver
from opa_redis_common import REDIS_PORTS, RedisOptions, pool_kwargs
from opa_redis_common.sentinel import is_sentinel_url


class AioredisDriver(Driver):
    """An asyncio ``redis.asyncio.Redis`` on a blocking pool of ``MAX_CONNECTIONS``.

    Concurrent requests beyond the pool wait for a connection (at most ``SOCKET_TIMEOUT``)
    instead of failing with "Too many connections"; a free connection is handed out without
    setting up that wait (``FreeFirstBlockingPool``). ``SOCKET_TIMEOUT`` on each send and
    reply is kept by one timer per pool (``watch.py``) rather than redis-py's per command.
    With ``CLUSTER: true``, redis-py's asyncio ``RedisCluster`` with its own pools instead.
    """

    name = "redis-aioredis"
    is_async = True
    contract_version = 1
    Options = RedisOptions
    default_ports = REDIS_PORTS
    # One URL names one server; a Sentinel URL names its sentinels, and with CLUSTER it may
    # list several startup nodes: any of them answering is enough for LOAD: auto.
    reachable_when = "any"
    legacy_names = ("opa.plugins.driver_redis.Aioredis",)

    @classmethod
    def instrument_tracing(cls) -> None:
        from opa_redis_common.tracing import instrument_redis

        instrument_redis()

    async def connect(self) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff
        from redis.exceptions import ConnectionError

        from opa_driver_redis_aioredis.pool import FreeFirstBlockingPool
        from opa_driver_redis_aioredis.watch import watched_url_options

        opts: RedisOptions = self.opts
        if opts.CLUSTER:
            from opa_driver_redis_aioredis.cluster import cluster_client

            self.instance = cluster_client(opts)
            return
        backoff = ExponentialBackoff(cap=opts.RETRY_BACKOFF_CAP, base=opts.RETRY_BACKOFF_BASE)
        # The policy of redis-walrus, with the asyncio Retry class: connection failures only.
        retry = Retry(backoff, opts.RETRIES, supported_errors=(ConnectionError,))
        if is_sentinel_url(opts.URL):
            from opa_driver_redis_aioredis.sentinel import sentinel_client

            self.instance = sentinel_client(opts, retry, [ConnectionError])
            return
        # The URL's options win over the defaults, as in redis-py's from_url(); the socket
        # timeout is kept by the pool's watch (watch.py), not by redis-py.
        connection = pool_kwargs(opts) | watched_url_options(opts.URL, opts.SOCKET_TIMEOUT)
        pool = FreeFirstBlockingPool(retry=retry, retry_on_error=[ConnectionError], **connection)
        self.instance = Redis(connection_pool=pool)

    async def validate(self) -> None:
        if self.opts.CLUSTER:
            from opa_driver_redis_aioredis.cluster import cluster_answers

            await cluster_answers(self.instance)
            return
        await self.instance.ping()

    async def disconnect(self) -> None:
        await self.instance.aclose()
        if self.opts.CLUSTER:
            return  # a cluster client closes its nodes' pools itself
        # A client given its pool leaves the pool open on close; both are closed here.
        await self.instance.connection_pool.aclose()
        if is_sentinel_url(self.opts.URL):
            from opa_driver_redis_aioredis.sentinel import disconnect_sentinels

            await disconnect_sentinels(self.instance.connection_pool)

    def unavailable_errors(self) -> tuple[type[Exception], ...]:
        if self.opts.CLUSTER:
            from opa_driver_redis_aioredis.cluster import OUTAGE_ERRORS

            return OUTAGE_ERRORS
        from redis.exceptions import ConnectionError, TimeoutError

        return (ConnectionError, TimeoutError)

    def is_unavailable(self, error: Exception) -> bool:
        if self.opts.CLUSTER:
            from opa_driver_redis_aioredis.cluster import is_cluster_outage

            return is_cluster_outage(error)
        return super().is_unavailable(error)

    def is_partial_outage(self, error: Exception) -> bool:
        if self.opts.CLUSTER:
            from opa_driver_redis_aioredis.cluster import is_one_node_outage

            return is_one_node_outage(error)
        return False
