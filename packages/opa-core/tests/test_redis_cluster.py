"""opa.testing.RedisClusterServers: a real Redis Cluster whose masters a test may stop and start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opa.testing import RedisClusterServers, ServiceUnavailable, skip_or_fail
from opa.testing._ports import port_accepts
from opa.testing._redis_cluster import HASH_SLOTS, node_command, slot_ranges


def started(cluster: RedisClusterServers) -> RedisClusterServers:
    try:
        cluster.start()
    except ServiceUnavailable as error:
        skip_or_fail(str(error))
    return cluster


@pytest.fixture
def cluster() -> Iterator[RedisClusterServers]:
    with RedisClusterServers(2) as servers:
        yield started(servers)


def info(port: int) -> dict[str, str]:
    text = str(node_command(port, "CLUSTER", "INFO"))
    return dict(line.split(":", 1) for line in text.split() if ":" in line)


@pytest.mark.parametrize("masters", [1, 2, 3, 7])
def test_the_slots_are_shared_out_whole_and_in_order(masters: int) -> None:
    """Every hash slot goes to exactly one master, in contiguous ranges of nearly equal size."""
    ranges = slot_ranges(masters)
    assert [slot for slots in ranges for slot in slots] == list(range(HASH_SLOTS))
    assert max(map(len, ranges)) - min(map(len, ranges)) <= 1


def test_a_cluster_needs_a_master() -> None:
    """A cluster of no masters is refused, naming the number."""
    with pytest.raises(ValueError, match="at least one master, not 0"):
        RedisClusterServers(0)


@pytest.mark.timeout(120)
def test_a_killed_master_comes_back_on_its_port_with_its_slots(
    cluster: RedisClusterServers,
) -> None:
    """The started cluster is whole; a killed master refuses connections, and started again
    it is on the same port and the cluster is whole again, its keys still its own."""
    for port in cluster.ports:
        assert info(port)["cluster_state"] == "ok"
        assert info(port)["cluster_slots_assigned"] == str(HASH_SLOTS)
    key = next(f"key{n}" for n in range(100) if cluster.master_of_key(f"key{n}") == 1)
    port = cluster.servers[1].port
    cluster.kill_master(1)
    assert not port_accepts(port)
    cluster.start_master(1)
    assert cluster.servers[1].port == port
    assert info(port)["cluster_state"] == "ok"
    assert cluster.master_of_key(key) == 1
    assert cluster.url == f"redis://127.0.0.1:{cluster.ports[0]},127.0.0.1:{cluster.ports[1]}"


@pytest.mark.timeout(120)
def test_a_proxied_cluster_announces_its_proxies_and_fails_them_together() -> None:
    """With proxied=True every node announces its proxy's port, which the URL names, and
    the proxies drop every connection at once and forward again."""
    with RedisClusterServers(2, proxied=True) as proxied:
        started(proxied)
        nodes = str(node_command(proxied.servers[0].port, "CLUSTER", "NODES"))
        for port in proxied.ports:
            assert f"127.0.0.1:{port}@" in nodes
            assert info(port)["cluster_state"] == "ok"  # through the proxy
        proxied.proxies.drop()
        for port in proxied.ports:
            with pytest.raises(ServiceUnavailable):
                node_command(port, "PING")  # the proxy closes the connection
        proxied.proxies.restore()
        assert info(proxied.ports[1])["cluster_state"] == "ok"
