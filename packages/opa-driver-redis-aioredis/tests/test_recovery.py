"""Both Redis drivers in one app ride out a Redis outage: fast 503s, then service again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from opa.testing import RedisServer, TestServices, build_app

ROUTES = """
from opa import get_instance, get_router

router = get_router()


@router.get("/incr/walrus")
def incr_walrus() -> int:
    return get_instance("walrus").incr("opa-recovery:walrus")


@router.get("/incr/aioredis")
async def incr_aioredis() -> int:
    return await get_instance("aioredis").incr("opa-recovery:aioredis")
"""

DRIVERS = {"walrus": "redis-walrus", "aioredis": "redis-aioredis"}
OPTS: dict[str, Any] = {
    "SOCKET_TIMEOUT": 1,
    "CONNECT_TIMEOUT": 1,
    "RETRIES": 2,
    "RETRY_BACKOFF_BASE": 0.05,
    "RETRY_BACKOFF_CAP": 0.2,
}


def worst_case_seconds(opts: dict[str, Any]) -> float:
    """Three times the longest timeout plus every backoff: a generous bound, not a target."""
    cap, base = opts["RETRY_BACKOFF_CAP"], opts["RETRY_BACKOFF_BASE"]
    backoff = sum(min(cap, base * 2**n) for n in range(1, opts["RETRIES"] + 1))
    return 3 * max(opts["SOCKET_TIMEOUT"], opts["CONNECT_TIMEOUT"]) + backoff


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A private Redis this test may stop, restart and pause; never the shared one."""
    with TestServices() as services:
        yield services.start_redis()


@pytest.fixture
def client(server: RedisServer, tmp_path: Path) -> Iterator[TestClient]:
    """An app whose two routes INCR through redis-walrus and redis-aioredis on *server*."""
    (tmp_path / "recovery_routes.py").write_text(ROUTES)
    components = {
        name: {"LOAD": "yes", "DRIVER": driver, "OPTS": {"URL": server.url, **OPTS}}
        for name, driver in DRIVERS.items()
    }
    # The drivers' own bounds are measured here, request after request: opa's component
    # breaker, which answers 503 at once once a component is down, is off.
    settings = {"PLUGIN_PATHS": [str(tmp_path)], "OPTIONAL_COMPONENTS": components}
    app = build_app({**settings, "COMPONENT_BREAKER": False})
    with TestClient(app) as test_client:
        for name in DRIVERS:
            assert test_client.get(f"/incr/{name}").json() == 1
        yield test_client


def timed_get(client: TestClient, path: str) -> tuple[int, float]:
    """The status of GET *path* and the seconds it took."""
    started = time.monotonic()
    status = client.get(path).status_code
    return status, time.monotonic() - started


@pytest.mark.timeout(120)
def test_an_outage_answers_503_fast_and_the_app_recovers(
    client: TestClient, server: RedisServer
) -> None:
    """With Redis stopped, each route answers 503 within its timeouts and /health says
    unavailable; once Redis is back, the same app serves again."""
    server.stop()
    for name in DRIVERS:
        for _ in range(3):  # the first request on dead connections, and later ones
            status, seconds = timed_get(client, f"/incr/{name}")
            assert status == 503
            assert seconds < worst_case_seconds(OPTS), f"{name} took {seconds:.2f}s to fail"
    health = client.get("/health")
    assert health.status_code == 503
    for name in DRIVERS:
        assert health.json()["components"][name]["status"] == "unavailable"

    server.start()
    for name in DRIVERS:
        assert client.get(f"/incr/{name}").status_code == 200
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"


@pytest.mark.timeout(120)
def test_a_hung_redis_answers_503_within_the_socket_timeout(
    client: TestClient, server: RedisServer
) -> None:
    """A Redis that accepts but does not answer costs each request one SOCKET_TIMEOUT: 503."""
    pause_ms = 4000  # longer than both requests, which run side by side
    with redis.Redis.from_url(server.url) as admin:
        admin.execute_command("CLIENT", "PAUSE", pause_ms, "ALL")
    with ThreadPoolExecutor(max_workers=len(DRIVERS)) as threads:
        futures = {name: threads.submit(timed_get, client, f"/incr/{name}") for name in DRIVERS}
    results = {name: future.result() for name, future in futures.items()}
    for name, (status, seconds) in results.items():
        assert status == 503, name
        assert OPTS["SOCKET_TIMEOUT"] <= seconds < worst_case_seconds(OPTS), (
            f"{name}: {seconds:.2f}s"
        )

    time.sleep(pause_ms / 1000)
    for name in DRIVERS:
        assert client.get(f"/incr/{name}").status_code == 200
