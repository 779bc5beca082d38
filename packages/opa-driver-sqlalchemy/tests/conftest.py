"""Databases for the tests: one of their own on each server, for the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sql_support import MARIADB, POSTGRES, own_database

pytest_plugins = ["opa.testing.fixtures"]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this test session's own on the machine's PostgreSQL (no +driver)."""
    with own_database(POSTGRES) as url:
        yield url


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """A database of this test session's own on the machine's MariaDB (no +driver)."""
    with own_database(MARIADB) as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file of this test session's own: the embedded database, no server."""
    path: Path = tmp_path_factory.mktemp("sqlite") / "test.db"
    return f"sqlite:///{path}"
