"""redis-aioredis on a Redis Cluster of three masters: keys spread over them all, one master
killed or hung costs only its own keys (503, at once or within SOCKET_TIMEOUT), and the app
serves them again once it is back, without a restart."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from redis.crc import key_slot

from cluster_support import MASTERS, node_url, running_cluster
from opa import Status
from opa.testing import RedisClusterServers, build_app, closed_port, wait_for

ROUTES = """
from opa import get_instance, get_router

router = get_router()


@router.get("/cluster/incr/{key}")
async def incr(key: str) -> int:
    return await get_instance("cluster").incr(key)


@router.get("/cluster/mget/{first}/{second}")
async def mget(first: str, second: str) -> list:
    return await get_instance("cluster").mget(first, second)


@router.get("/cluster/wrong-type/{key}")
async def wrong_type(key: str) -> int:
    client = get_instance("cluster")
    await client.set(key, "text")
    return await client.lpush(key, "item")
"""

OPTS: dict[str, Any] = {"CLUSTER": True, "SOCKET_TIMEOUT": 1, "CONNECT_TIMEOUT": 1, "RETRIES": 2}
ONE_NODE_OUTAGES = redis.VERSION >= (7, 2)
"""Whether redis-py's asyncio cluster client rides out one dead master (7.2 and later).

Before 7.2, one node's connection error makes it close every node's connections, and it
asks its first master for the command table each time it re-reads the map of slots, so
while that master is down every key's request fails (503, never 500 nor a hang) until the
master is back. The tests below expect the other masters' keys to answer 200 only from 7.2.
"""
BOUND = 3 * (OPTS["SOCKET_TIMEOUT"] + OPTS["CONNECT_TIMEOUT"])
"""No request may take longer: a generous bound on the driver's timeouts, not a target."""
KEYS_PER_MASTER = 20


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServers]:
    with running_cluster() as servers:
        yield servers


@pytest.fixture
def keys(cluster: RedisClusterServers) -> dict[int, list[str]]:
    """Keys of this test's own, KEYS_PER_MASTER for each master, by the master's index."""
    prefix = f"opa-test:{secrets.token_hex(4)}:"
    found: dict[int, list[str]] = {index: [] for index in range(MASTERS)}
    number = 0
    while any(len(names) < KEYS_PER_MASTER for names in found.values()):
        key = f"{prefix}{number}"
        names = found[cluster.master_of_slot(key_slot(key.encode()))]
        if len(names) < KEYS_PER_MASTER:
            names.append(key)
        number += 1
    return found


@pytest.fixture
def client(cluster: RedisClusterServers, tmp_path: Path) -> Iterator[TestClient]:
    """An app whose component 'cluster' is redis-aioredis on the cluster, breaker on; a
    route's error is its 500, as a real client sees it."""
    (tmp_path / "cluster_routes.py").write_text(ROUTES)
    component = {"LOAD": "yes", "DRIVER": "redis-aioredis", "OPTS": {"URL": cluster.url, **OPTS}}
    settings = {"PLUGIN_PATHS": [str(tmp_path)], "OPTIONAL_COMPONENTS": {"CLUSTER": component}}
    with TestClient(build_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def timed_get(client: TestClient, path: str) -> tuple[int, float]:
    """The status of GET *path* and the seconds it took."""
    started = time.monotonic()
    status = client.get(path).status_code
    return status, time.monotonic() - started


def statuses(client: TestClient, keys: list[str]) -> list[int]:
    """INCR each key through the app at once, from as many threads; each one's status,
    after checking that none took longer than the bound."""
    with ThreadPoolExecutor(max_workers=16) as threads:
        results = list(threads.map(lambda key: timed_get(client, f"/cluster/incr/{key}"), keys))
    slow = [seconds for _, seconds in results if seconds >= BOUND]
    assert not slow, f"{len(slow)} requests took {max(slow):.2f}s or more"
    return [status for status, _ in results]


def all_served_again(client: TestClient, keys: dict[int, list[str]], back: int) -> None:
    """Wait until the keys of master *back* are served again, then find every key served."""
    wait_for(
        lambda: timed_get(client, f"/cluster/incr/{keys[back][0]}")[0] == 200,
        BOUND * 10,
        f"the keys of master {back} to be served again",
    )
    every_key = [key for names in keys.values() for key in names]
    assert statuses(client, every_key) == [200] * len(every_key)


def component_status(client: TestClient) -> Status:
    app: Any = client.app
    status: Status = app.state.opa.components.get("cluster").status
    return status


@pytest.mark.timeout(120)
def test_keys_written_through_the_component_land_on_every_master(
    client: TestClient, cluster: RedisClusterServers, keys: dict[int, list[str]]
) -> None:
    """Keys INCRed through the app are spread by slot: each master holds its own, and only those."""
    every_key = [key for names in keys.values() for key in names]
    assert statuses(client, every_key) == [200] * len(every_key)
    for index, names in keys.items():
        with redis.Redis.from_url(node_url(cluster, index), decode_responses=True) as node:
            assert sorted(node.scan_iter(match=f"{names[0].rsplit(':', 1)[0]}:*")) == sorted(names)


@pytest.mark.timeout(180)
def test_a_killed_master_costs_only_its_own_keys_until_it_is_back(
    client: TestClient, cluster: RedisClusterServers, keys: dict[int, list[str]]
) -> None:
    """With one master killed (the first, redis-py's default node), its keys answer 503 and
    the other masters' keys 200, request after request and all at once, the component
    staying up (before redis-py 7.2: every key 503, see ONE_NODE_OUTAGES); started again on
    its port, it serves its keys again through the same app."""
    dead = 0
    live = [key for index, names in keys.items() if index != dead for key in names]
    served = {200} if ONE_NODE_OUTAGES else {200, 503}
    cluster.kill_master(dead)
    try:
        for _ in range(3):
            assert statuses(client, keys[dead]) == [503] * KEYS_PER_MASTER
            assert set(statuses(client, live)) <= served
            mixed = [key for pair in zip(keys[dead], live, strict=False) for key in pair]
            answered = dict(zip(mixed, statuses(client, mixed), strict=True))
            assert {key: answered[key] for key in keys[dead]} == dict.fromkeys(keys[dead], 503)
            assert {answered[key] for key in mixed if key not in keys[dead]} <= served
            if ONE_NODE_OUTAGES:
                assert component_status(client) is Status.OK
        if ONE_NODE_OUTAGES:  # before, the component is down: "component 'cluster' is down"
            response = client.get(f"/cluster/incr/{keys[dead][0]}")
            assert response.json() == {"detail": "backend unavailable for component 'cluster'"}
    finally:
        cluster.start_master(dead)
    all_served_again(client, keys, dead)
    assert client.get("/health").json()["components"]["cluster"]["status"] == "ok"


@pytest.mark.timeout(180)
def test_a_hung_master_costs_its_keys_one_socket_timeout(
    client: TestClient, cluster: RedisClusterServers, keys: dict[int, list[str]]
) -> None:
    """A master that accepts and never answers: each of its keys answers 503 after one
    SOCKET_TIMEOUT (a timeout is not retried), the others' keys 200 (from redis-py 7.2, see
    ONE_NODE_OUTAGES); resumed, all 200."""
    hung = 1
    live = [key for index, names in keys.items() if index != hung for key in names]
    cluster.pause_master(hung)
    try:
        for key in keys[hung][:3]:
            status, seconds = timed_get(client, f"/cluster/incr/{key}")
            assert status == 503
            assert OPTS["SOCKET_TIMEOUT"] <= seconds < BOUND, f"{seconds:.2f}s"
        assert set(statuses(client, live)) <= ({200} if ONE_NODE_OUTAGES else {200, 503})
    finally:
        cluster.resume_master(hung)
    cluster.wait_until_ok()
    all_served_again(client, keys, hung)


def test_a_bad_command_on_the_cluster_answers_500(
    client: TestClient, keys: dict[int, list[str]]
) -> None:
    """Mistakes are no outage: keys of two masters in one MGET, and a command on a key of
    the wrong type, answer 500, and the component stays up."""
    first, second = keys[0][0], keys[1][0]
    assert client.get(f"/cluster/mget/{first}/{second}").status_code == 500
    assert client.get(f"/cluster/wrong-type/{first}").status_code == 500
    assert component_status(client) is Status.OK


def test_load_auto_goes_on_when_one_startup_node_answers(
    cluster: RedisClusterServers, tmp_path: Path
) -> None:
    """Under LOAD auto, startup nodes of which only one answers are enough: the client finds
    the rest of the cluster through it, and serves every master's keys."""
    (tmp_path / "cluster_routes.py").write_text(ROUTES)
    url = f"redis://127.0.0.1:{closed_port()},127.0.0.1:{cluster.ports[1]}"
    component = {"LOAD": "auto", "DRIVER": "redis-aioredis", "OPTS": {**OPTS, "URL": url}}
    settings = {"PLUGIN_PATHS": [str(tmp_path)], "OPTIONAL_COMPONENTS": {"CLUSTER": component}}
    with TestClient(build_app(settings)) as client:
        assert component_status(client) is Status.OK
        key = f"opa-test:{secrets.token_hex(4)}"
        assert client.get(f"/cluster/incr/{key}").json() == 1
        assert len(client.app.state.opa.components.get("cluster").instance.get_nodes()) == MASTERS
