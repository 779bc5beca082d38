"""redis-aioredis passes opa's driver compliance suite against a Redis Cluster of three masters.

Every node sits behind a proxy and announces the proxy's port, so the client, which learns
the nodes' addresses from the cluster, goes through the proxies; the outage cases drop,
silence and restore all of them at once: an outage of the whole cluster. One master's
outage, with the others serving, is tests/test_cluster.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from cluster_support import node_url, running_cluster
from opa import Component
from opa.testing import ProxyGroup, RedisClusterServers, closed_port
from opa_redis_common.testing import RedisDriverSuite


@pytest.fixture(scope="module")
def proxied_cluster() -> Iterator[RedisClusterServers]:
    with running_cluster(proxied=True) as cluster:
        yield cluster


class TestAioredisClusterCompliance(RedisDriverSuite):
    """The shared Redis cases with CLUSTER: true, through the installed entry point."""

    driver_name = "redis-aioredis"
    distribution = "opa-driver-redis-aioredis"
    cluster: RedisClusterServers

    @pytest.fixture
    def live_options(self, proxied_cluster: RedisClusterServers) -> dict[str, Any]:
        self.cluster = proxied_cluster
        return {"URL": proxied_cluster.url, "CLUSTER": True, "SOCKET_TIMEOUT": 2}

    def unreachable_options(self) -> dict[str, Any]:
        url = f"redis://127.0.0.1:{closed_port()},127.0.0.1:{closed_port()}"
        return {"URL": url, "CLUSTER": True, "CONNECT_TIMEOUT": 1}

    def credential_options(self, password: str) -> dict[str, Any]:
        url = f"redis://opa:{password}@127.0.0.1:{closed_port()},127.0.0.1:{closed_port()}"
        return {"URL": url, "CLUSTER": True}

    def invalid_options(self) -> list[tuple[dict[str, Any], str]]:
        return [
            *super().invalid_options(),
            ({"URL": "redis://127.0.0.1:7000,127.0.0.1:7001"}, "CLUSTER"),
            ({"URL": "redis://127.0.0.1:7000/2", "CLUSTER": True}, "CLUSTER"),
            ({"URL": "unix:///run/redis.sock", "CLUSTER": True}, "CLUSTER"),
            ({"URL": "redis://127.0.0.1:7000", "CLUSTER": "sometimes"}, "CLUSTER"),
        ]

    async def round_trip(self, component: Component, token: str) -> Any:
        """A key of the token's own, so the calls land on every master; ECHO names no key,
        and older redis-py cluster clients cannot route it."""
        client = component.instance
        key = f"opa-test:{token}"
        await client.set(key, token, ex=60)
        return await client.get(key)

    @pytest.fixture
    def admin_url(self) -> Callable[[str], str]:
        return lambda key: node_url(self.cluster, self.cluster.master_of_key(key))

    @contextmanager
    def outage_proxy(self, live_options: dict[str, Any]) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Every node's proxy together (the cluster's URL already goes through them),
        forwarding again afterwards for the next case."""
        proxies: ProxyGroup = self.cluster.proxies
        try:
            yield proxies, {**live_options, **self.timeout_options}
        finally:
            if not proxies.closed:
                proxies.restore()
