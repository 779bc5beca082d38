"""Both drivers ride out a PostgreSQL restart under load: 503s while it is gone, then
service again on the same app, with no manual reconnect."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opa.testing import PostgresServer, ServiceUnavailable, build_app, skip_or_fail, wait_for
from sql_support import with_database

ROUTES = """
from sqlalchemy import text

from opa import get_instance, get_router

router = get_router()
INSERT = text("INSERT INTO hits (route) VALUES (:route) RETURNING id")
COUNT = text("SELECT COUNT(*) FROM hits WHERE route = :route")


@router.post("/hit/sync")
def hit_sync() -> int:
    with get_instance("sync").begin() as connection:
        connection.execute(INSERT, {"route": "sync"})
        return connection.execute(COUNT, {"route": "sync"}).scalar_one()


@router.post("/hit/async")
async def hit_async() -> int:
    async with get_instance("async").begin() as connection:
        await connection.execute(INSERT, {"route": "async"})
        return (await connection.execute(COUNT, {"route": "async"})).scalar_one()
"""

DRIVERS = {"sync": ("sqlalchemy", "psycopg"), "async": ("sqlalchemy-async", "asyncpg")}
OPTS = {"CONNECT_TIMEOUT": 2, "STATEMENT_TIMEOUT": 5, "POOL_TIMEOUT": 5, "POOL_SIZE": 4}
LOAD_THREADS = 4


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """A private PostgreSQL this test may stop and start; never the machine's own."""
    try:
        postgres = PostgresServer()
    except ServiceUnavailable as error:
        skip_or_fail(str(error))
    try:
        postgres.start()
        from sqlalchemy import create_engine

        engine = create_engine(with_database(postgres.url, "postgres", "psycopg"))
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE hits (id SERIAL PRIMARY KEY, route TEXT)")
        engine.dispose()
        yield postgres
    finally:
        postgres.close()


@pytest.fixture
def client(server: PostgresServer, tmp_path: Path) -> Iterator[TestClient]:
    """An app whose two routes write through sqlalchemy and sqlalchemy-async on *server*."""
    (tmp_path / "hits_routes.py").write_text(ROUTES)
    components = {
        name: {
            "LOAD": "yes",
            "DRIVER": driver,
            "OPTS": {"URL": with_database(server.url, "postgres", dbapi), **OPTS},
        }
        for name, (driver, dbapi) in DRIVERS.items()
    }
    # The drivers' own behaviour is what is tested: opa's breaker (503 at once once a
    # component is marked down) is off.
    settings = {"PLUGIN_PATHS": [str(tmp_path)], "OPTIONAL_COMPONENTS": components}
    app = build_app({**settings, "COMPONENT_BREAKER": False})
    with TestClient(app) as test_client:
        for name in DRIVERS:
            assert test_client.post(f"/hit/{name}").status_code == 200
        yield test_client


class Load:
    """Requests to both routes from a few threads until stopped, counting the statuses."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.statuses: Counter[tuple[str, int]] = Counter()
        """Every request's (route, status) since the start."""
        self.recent: Counter[tuple[str, int]] = Counter()
        """The same since the last :meth:`restart_count`."""
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self, name: str) -> None:
        while not self.stopping.is_set():
            status = self.client.post(f"/hit/{name}").status_code
            with self.lock:
                self.statuses[name, status] += 1
                self.recent[name, status] += 1

    def restart_count(self) -> None:
        with self.lock:
            self.recent.clear()

    def seen(self, status: int) -> set[str]:
        """The routes that answered *status* since the last :meth:`restart_count`."""
        with self.lock:
            return {name for (name, code) in self.recent if code == status}


@pytest.mark.timeout(180)
def test_a_restart_under_load_answers_503_then_recovers(
    client: TestClient, server: PostgresServer
) -> None:
    """Stopped under load, PostgreSQL costs 503s (never a 500); started again on the same
    port, both routes serve again without the app being restarted."""
    load = Load(client)
    with ThreadPoolExecutor(max_workers=LOAD_THREADS) as threads:
        try:
            for number in range(LOAD_THREADS):
                threads.submit(load.run, list(DRIVERS)[number % len(DRIVERS)])
            wait_for(lambda: load.seen(200) == set(DRIVERS), 30, "both routes serving")
            server.stop()
            load.restart_count()
            wait_for(lambda: load.seen(503) == set(DRIVERS), 60, "both routes answering 503")
            health = client.get("/health")
            assert health.status_code == 503
            statuses = {health.json()["components"][name]["status"] for name in DRIVERS}
            assert statuses == {"unavailable"}
            server.start()
            load.restart_count()
            wait_for(lambda: load.seen(200) == set(DRIVERS), 60, "both routes serving again")
        finally:
            load.stopping.set()
    assert not {code for (_, code) in load.statuses} - {200, 503}, load.statuses
    assert client.get("/health").status_code == 200


@pytest.mark.timeout(120)
def test_a_stopped_server_answers_503_within_the_connect_timeout(
    client: TestClient, server: PostgresServer
) -> None:
    """With the server gone, each request fails over to 503 in about one connect attempt."""
    server.stop()
    for name in DRIVERS:
        for _ in range(3):  # the first request on dead pooled connections, and later ones
            started = time.monotonic()
            assert client.post(f"/hit/{name}").status_code == 503
            assert time.monotonic() - started < 3 * OPTS["CONNECT_TIMEOUT"]
