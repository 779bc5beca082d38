"""Why ``redis-walrus`` takes no Redis Cluster, said at start-up as a refused option.

walrus's ``Database`` is a subclass of redis-py's single-server ``Redis``; redis-py's
``RedisCluster`` is another class, not a ``Redis``, so a ``Database`` cannot be built on it,
and grafting walrus's methods onto it reaches into walrus's private set-up. Even grafted,
what walrus adds to redis-py does not hold on a cluster: a lock's release runs a script on
two keys in different hash slots, ``atomic()`` becomes a pipeline that is no transaction,
caches write many keys with one ``MSET``, models and full-text search combine keys of many
slots. ``redis-aioredis`` takes a cluster (its README says how).
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
