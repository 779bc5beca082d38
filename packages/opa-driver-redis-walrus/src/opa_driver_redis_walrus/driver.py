"""opa's ``redis-walrus`` driver: each component is a sync ``walrus.Database``.

This module is what the ``opa.drivers`` entry point loads, so it stays cheap: walrus and
redis are imported on ``connect()``, never when the driver is merely installed or looked up.
"""

from __future__ import annotations

from opa import Driver
from opa_driver_redis_walrus.cluster import WalrusOptions
from opa_redis_common import REDIS_PORTS, RedisOptions, pool_kwargs
from opa_redis_common.sentinel import is_sentinel_url


class WalrusDriver(Driver):
    """A ``walrus.Database`` (a redis-py client with locks, bloom filters, caches, ...).

    It sits on a blocking pool of ``MAX_CONNECTIONS``: sync routes run in a thread pool,
    and a burst wider than the pool waits for a connection instead of failing.
    """

    name = "redis-walrus"
    is_async = False
    contract_version = 1
    Options = WalrusOptions  # the shared options; CLUSTER: true is refused (cluster.py)
    default_ports = REDIS_PORTS
    reachable_when = "any"  # a Sentinel URL's sentinels: one that answers is enough
    legacy_names = ("opa.plugins.driver_redis.Walrus",)

    @classmethod
    def instrument_tracing(cls) -> None:
        from opa_redis_common.tracing import instrument_redis

        instrument_redis()

    def connect(self) -> None:
        import redis
        import walrus
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        opts: RedisOptions = self.opts
        backoff = ExponentialBackoff(cap=opts.RETRY_BACKOFF_CAP, base=opts.RETRY_BACKOFF_BASE)
        # Only a failed connection is retried: a timeout repeated would multiply the wait.
        # redis 5 also wants the error in retry_on_error before it retries a command.
        errors = (redis.ConnectionError,)
        retry = Retry(backoff, opts.RETRIES, supported_errors=errors)
        if is_sentinel_url(opts.URL):
            from opa_driver_redis_walrus.sentinel import sentinel_database

            self.instance = sentinel_database(opts, retry, list(errors))
            return
        pool = redis.BlockingConnectionPool.from_url(
            opts.URL, retry=retry, retry_on_error=list(errors), **pool_kwargs(opts)
        )
        self.instance = walrus.Database(connection_pool=pool)

    def validate(self) -> None:
        self.instance.ping()

    def disconnect(self) -> None:
        # The pool was handed in, so closing the client would leave it open.
        self.instance.connection_pool.disconnect()
        if is_sentinel_url(self.opts.URL):
            from opa_driver_redis_walrus.sentinel import disconnect_sentinels

            disconnect_sentinels(self.instance.connection_pool)

    def unavailable_errors(self) -> tuple[type[Exception], ...]:
        from redis.exceptions import ConnectionError, TimeoutError

        return (ConnectionError, TimeoutError)
