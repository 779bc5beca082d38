"""examples/sql over HTTP: the migration step as the README runs it, then every route, on
SQLite (no server) and on PostgreSQL."""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from opa.testing import LoggedProcess, build_app, clean_environ, free_port, http_answers, wait_for

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "sql"
UBIK = {"title": "Ubik", "author": "Philip K. Dick", "year": 1969}


def migrate(url: str) -> str:
    """Run ``python -m books.migrate URL`` in the example's folder; what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "books.migrate", url],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        env=clean_environ(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@functools.cache
def example_tables() -> Any:
    """The example's ORM metadata, loaded from its file under a name of its own: importing
    ``books`` here would clash with the plugin of that name that each app loads."""
    spec = importlib.util.spec_from_file_location(
        "sql_example_models", EXAMPLE / "books" / "models.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # SQLAlchemy resolves the annotations through it
    spec.loader.exec_module(module)
    return module.Base.metadata


def sync_url(url: str) -> str:
    """*url* with the sync DB-API that the migration step uses for it."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database holding the example's tables, empty: a SQLite file, or PostgreSQL.

    The tables are made in this process, as the migration step makes them; the step itself,
    a process of its own, is tested once per database below.
    """
    from sqlalchemy import create_engine

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'books.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = create_engine(sync_url(url))
    tables = example_tables()
    with engine.begin() as connection:
        tables.drop_all(connection)
        tables.create_all(connection)
    engine.dispose()
    return url


@pytest.fixture
def client(database: str) -> Iterator[TestClient]:
    """The example as its settings folder configures it, on the test's database."""
    settings = {
        "PLUGIN_PATHS": [str(EXAMPLE)],
        "OPTIONAL_COMPONENTS": {"dynaconf_merge": True, "DB": {"OPTS": {"URL": database}}},
    }
    with TestClient(build_app(settings, settings_dir=EXAMPLE / "settings")) as test_client:
        yield test_client


def test_the_migration_step_creates_the_tables_once(database: str) -> None:
    """The migration command creates the missing tables, and run again, creates nothing."""
    from sqlalchemy import create_engine

    engine = create_engine(sync_url(database))
    with engine.begin() as connection:
        example_tables().drop_all(connection)
    engine.dispose()
    assert migrate(database).endswith("created books\n")
    assert migrate(database).endswith("created nothing, up to date\n")


def test_a_book_is_added_read_changed_and_deleted(client: TestClient) -> None:
    """The whole life of a book through the API."""
    added = client.post("/books", json=UBIK)
    assert added.status_code == 201
    book = added.json()
    assert book == {**UBIK, "id": book["id"]}
    assert client.get(f"/books/{book['id']}").json() == book
    changed = client.patch(f"/books/{book['id']}", json={"year": 1970})
    assert changed.json() == {**book, "year": 1970}
    assert client.get(f"/books/{book['id']}").json()["year"] == 1970
    assert client.delete(f"/books/{book['id']}").status_code == 204
    assert client.get(f"/books/{book['id']}").status_code == 404
    assert client.delete(f"/books/{book['id']}").status_code == 404


def test_books_are_listed_in_pages(client: TestClient) -> None:
    """The list keeps the order books were added in, limit and offset page through it."""
    ids = [client.post("/books", json={**UBIK, "title": f"T{n}"}).json()["id"] for n in range(5)]
    assert [b["id"] for b in client.get("/books", params={"limit": 2}).json()] == ids[:2]
    page = client.get("/books", params={"limit": 2, "offset": 4}).json()
    assert [b["id"] for b in page] == ids[4:]


@pytest.mark.parametrize(
    "body",
    [
        {"title": "", "author": "a"},
        {"title": "t" * 201, "author": "a"},
        {"title": "t"},
        {**UBIK, "isbn": "x"},
        {**UBIK, "year": "soon"},
    ],
)
def test_bad_books_are_refused(client: TestClient, body: dict[str, object]) -> None:
    """An empty or too long field, a missing author, an unknown field, a bad year: 422."""
    assert client.post("/books", json=body).status_code == 422


def test_bad_changes_and_ids_are_refused(client: TestClient) -> None:
    """A null title, an unknown field, and ids that are not positive numbers are refused."""
    book = client.post("/books", json=UBIK).json()
    assert client.patch(f"/books/{book['id']}", json={"title": None}).status_code == 422
    assert client.patch(f"/books/{book['id']}", json={"isbn": "x"}).status_code == 422
    for bad in ("0", "-1", "abc", str(2**40)):
        assert client.get(f"/books/{bad}").status_code == 422
    assert client.get("/books", params={"limit": 101}).status_code == 422


@pytest.mark.timeout(120)
def test_opa_run_serves_the_example_as_the_readme_says(tmp_path: Path) -> None:
    """`python -m books.migrate` then `opa run` in examples/sql, on SQLite, over real HTTP."""
    url = f"sqlite:///{tmp_path / 'books.db'}"
    assert migrate(url).endswith("created books\n")
    port = free_port()
    opa = Path(sys.executable).with_name("opa")
    env = clean_environ(
        EXAMPLE / "settings", OPA_PLUGIN_PATHS=".", OPA_OPTIONAL_COMPONENTS__DB__OPTS__URL=url
    )
    command = [str(opa), "run", "--host", "127.0.0.1", "--port", str(port), "--no-reload"]
    with LoggedProcess(command, tmp_path / "opa.log", env=env, cwd=EXAMPLE) as server:
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            server.check_alive()
            return http_answers(f"{base}/health")

        wait_for(ready, 60, "opa run answering /health")
        added = httpx.post(f"{base}/books", json=UBIK, timeout=10)
        assert added.status_code == 201
        assert httpx.get(f"{base}/books", timeout=10).json() == [added.json()]
