"""Each request gets a session of its own from the component, closed when the request ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opa import ComponentError, get_component
from opa.testing import build_app, override_instance
from opa_driver_sqlalchemy.sessions import session_factory
from sql_support import with_database

ROUTES = """
from typing import Annotated

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from opa import get_router
from opa_driver_sqlalchemy import async_session, session

router = get_router()
SyncDb = Annotated[Session, session("sync")]
AsyncDb = Annotated[AsyncSession, async_session("async")]


@router.post("/sync/{name}")
def add_sync(name: str, db: SyncDb, commit: bool = True) -> int:
    db.execute(text("INSERT INTO notes (name) VALUES (:name)"), {"name": name})
    if commit:
        db.commit()
    return db.execute(text("SELECT COUNT(*) FROM notes")).scalar_one()


@router.get("/sync")
def count_sync(db: SyncDb) -> int:
    return db.execute(text("SELECT COUNT(*) FROM notes")).scalar_one()


@router.post("/async/{name}")
async def add_async(name: str, db: AsyncDb, commit: bool = True) -> int:
    await db.execute(text("INSERT INTO notes (name) VALUES (:name)"), {"name": name})
    if commit:
        await db.commit()
    return (await db.execute(text("SELECT COUNT(*) FROM notes"))).scalar_one()


@router.get("/async")
async def count_async(db: AsyncDb) -> int:
    return (await db.execute(text("SELECT COUNT(*) FROM notes"))).scalar_one()
"""


def create_notes(url: str) -> None:
    """An empty ``notes`` table in the database at *url* (a sync URL)."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS notes")
        connection.exec_driver_sql("CREATE TABLE notes (name VARCHAR(40) NOT NULL)")
    engine.dispose()


def app_on(tmp_path: Path, sync_url: str, async_url: str, **extra: Any) -> TestClient:
    """An app with component ``sync`` (sqlalchemy) and ``async`` (sqlalchemy-async) on the urls."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "notes_routes.py").write_text(ROUTES)
    components = {
        "SYNC": {"LOAD": "yes", "DRIVER": "sqlalchemy", "OPTS": {"URL": sync_url}},
        "ASYNC": {"LOAD": "yes", "DRIVER": "sqlalchemy-async", "OPTS": {"URL": async_url}},
    }
    components.update(extra)
    settings = {"PLUGIN_PATHS": [str(tmp_path)], "OPTIONAL_COMPONENTS": components}
    return TestClient(build_app(settings))


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(URL, the same URL) of an empty notes table on each database, no +driver in either."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'notes.db'}"
        create_notes(url)
        return url, url
    server: str = request.getfixturevalue(
        "postgres_url" if request.param == "postgresql" else "mariadb_url"
    )
    database = server.rsplit("/", 1)[1]
    dbapi = "psycopg" if request.param == "postgresql" else "pymysql"
    create_notes(with_database(server, database, dbapi))
    return server, server


@pytest.fixture
def client(urls: tuple[str, str], tmp_path: Path) -> Iterator[TestClient]:
    with app_on(tmp_path / "app", *urls) as test_client:
        yield test_client


def checked_out() -> dict[str, int]:
    """How many connections each component's pool has handed out and not taken back."""
    sync_engine = get_component("sync").instance
    async_engine = get_component("async").instance.sync_engine
    return {"sync": sync_engine.pool.checkedout(), "async": async_engine.pool.checkedout()}


def test_a_session_per_request_commits_and_is_closed(client: TestClient) -> None:
    """A committed insert is there for the next request, and no connection stays checked out."""
    for kind in ("sync", "async"):
        before = client.get(f"/{kind}").json()
        assert client.post(f"/{kind}/first").json() == before + 1
        assert client.get(f"/{kind}").json() == before + 1
    assert checked_out() == {"sync": 0, "async": 0}


def test_what_a_request_did_not_commit_is_rolled_back(client: TestClient) -> None:
    """Closing the session at the end of the request rolls back what it left uncommitted."""
    for kind in ("sync", "async"):
        before = client.get(f"/{kind}").json()
        assert client.post(f"/{kind}/draft", params={"commit": False}).json() == before + 1
        assert client.get(f"/{kind}").json() == before
    assert checked_out() == {"sync": 0, "async": 0}


def test_the_wrong_dependency_is_refused_by_name(tmp_path: Path) -> None:
    """session() on an async component (and async_session() on a sync one) says which to use."""
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    create_notes(url)
    with app_on(tmp_path / "app", url, url):
        with pytest.raises(ComponentError, match=r"async_session\('async'\)"):
            session_factory("async", is_async=False)
        with pytest.raises(ComponentError, match=r"session\('sync'\)"):
            session_factory("sync", is_async=True)


def test_a_component_that_is_not_connected_answers_503(tmp_path: Path) -> None:
    """A request asking for a session of a component that did not connect gets 503."""
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    create_notes(url)
    skipped = {"LOAD": "no", "DRIVER": "sqlalchemy-async", "OPTS": {"URL": url}}
    with app_on(tmp_path / "app", url, url, ASYNC=skipped) as client:
        response = client.get("/async")
        assert response.status_code == 503
        assert "async" in response.json()["detail"]


def test_a_replaced_engine_gets_sessions_of_its_own(tmp_path: Path) -> None:
    """With the instance replaced by a test's engine, sessions are bound to that engine."""
    from sqlalchemy import create_engine

    url = f"sqlite:///{tmp_path / 'notes.db'}"
    other = f"sqlite:///{tmp_path / 'other.db'}"
    create_notes(url)
    create_notes(other)
    engine = create_engine(other)
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO notes (name) VALUES ('a'), ('b')")
    with app_on(tmp_path / "app", url, url) as client, override_instance("sync", engine):
        assert client.get("/sync").json() == 2
    engine.dispose()
