"""Why ``redis-walrus`` takes no Redis Cluster, said at start-up as a refused option.

walrus's ``Database`` is a subclass of redis-py's single-server ``Redis``; redis-py's
``RedisCluster`` is a class of its own, not a ``Redis``, and the two cannot be combined by
subclassing (Python finds no consistent method order for their command classes). Copying
walrus's methods onto a ``RedisCluster`` runs, but needs walrus's private set-up by hand,
and then what walrus adds does not hold: a lock's release runs a script on two keys in two
hash slots and is refused (the lock stays held until its TTL), ``atomic()`` becomes a
pipeline without MULTI/EXEC, a cache's ``set_many``/``get_many`` and set algebra are
refused, ``stream_log`` finds no connection pool. The package README lists what was tried.
``redis-aioredis`` takes a cluster.
"""

from __future__ import annotations

from pydantic import field_validator

from opa_redis_common import RedisOptions

NO_CLUSTER = (
    "redis-walrus cannot use a Redis Cluster: walrus builds on redis-py's single-server "
    "client, and its locks, atomic() and caches send commands a cluster refuses; use "
    "DRIVER: redis-aioredis for a cluster"
)


class WalrusOptions(RedisOptions):
    """The Redis drivers' shared ``OPTS``, with ``CLUSTER: true`` refused."""

    @field_validator("CLUSTER")
    @classmethod
    def _no_cluster(cls, cluster: bool) -> bool:
        if cluster:
            raise ValueError(NO_CLUSTER)
        return cluster
