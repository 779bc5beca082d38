"""The private Redis Clusters the cluster tests run against, and what they share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opa.testing import RedisClusterServers, ServiceUnavailable, skip_or_fail

MASTERS = 3


@contextmanager
def running_cluster(*, proxied: bool = False) -> Iterator[RedisClusterServers]:
    """A private cluster of three masters, stopped afterwards; a test skips (fails under
    CI=true) when it cannot start."""
    with RedisClusterServers(MASTERS, proxied=proxied) as cluster:
        try:
            cluster.start()
        except ServiceUnavailable as error:
            skip_or_fail(str(error))
        yield cluster


def node_url(cluster: RedisClusterServers, index: int) -> str:
    """A plain redis:// URL of master *index* itself, for an admin client of the test's."""
    return f"redis://127.0.0.1:{cluster.servers[index].port}/0"
