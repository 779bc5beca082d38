"""Both drivers pass opa's driver compliance suite on PostgreSQL, MariaDB and SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from opa import Component, ComponentError
from opa.testing import DriverComplianceSuite, closed_port
from sql_support import with_database

MISSING_FOLDER = Path("/nonexistent-opa-sql-folder")
UNKNOWN_DATABASE = "opa_no_such_database"


def answer_query(token: str) -> Any:
    """``SELECT`` of *token* as a bound parameter, which every DB-API sends its own way."""
    from sqlalchemy import literal, select

    return select(literal(token))


class RoundTrips:
    """``round_trip`` for both kinds of engine: one query whose answer is the token."""

    def round_trip(self, component: Component, token: str) -> Any:
        if component.is_async:
            return self._async_round_trip(component, token)
        with component.instance.connect() as connection:
            return connection.execute(answer_query(token)).scalar_one()

    async def _async_round_trip(self, component: Component, token: str) -> Any:
        async with component.instance.connect() as connection:
            return (await connection.execute(answer_query(token))).scalar_one()


class ServerSuite(RoundTrips, DriverComplianceSuite):
    """The cases every driver/database pair shares; subclasses name the pair."""

    distribution = "opa-driver-sqlalchemy"
    family: ClassVar[str] = ""
    dbapi: ClassVar[str] = ""
    user: ClassVar[str] = ""
    database_fixture: ClassVar[str] = ""
    """The conftest fixture giving this session's own database on the server."""

    @pytest.fixture
    def live_options(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        url: str = request.getfixturevalue(self.database_fixture)
        return {"URL": with_database(url, url.rsplit("/", 1)[1], self.dbapi)}

    def url(self, server: str, database: str = "test") -> str:
        return f"{self.family}+{self.dbapi}://{server}/{database}"

    def unreachable_options(self) -> dict[str, Any]:
        return {"URL": self.url(f"{self.user}@127.0.0.1:{closed_port()}"), "CONNECT_TIMEOUT": 2}

    def credential_options(self, password: str) -> dict[str, Any]:
        return {"URL": self.url(f"{self.user}:{password}@127.0.0.1:{closed_port()}")}

    def refused_options(self, live_options: dict[str, Any], password: str) -> dict[str, Any]:
        # Trust authentication takes any password: the unknown database is what is refused.
        server = live_options["URL"].split("://", 1)[1].rsplit("/", 1)[0].split("@", 1)[1]
        return {
            **live_options,
            "URL": self.url(f"{self.user}:{password}@{server}", UNKNOWN_DATABASE),
        }

    def invalid_options(self) -> list[tuple[dict[str, Any], str]]:
        url = self.url(f"{self.user}@127.0.0.1")
        return [
            ({"URL": url, "POOL_SIZE": 0}, "POOL_SIZE"),
            ({"URL": url, "MAX_OVERFLOW": -1}, "MAX_OVERFLOW"),
            ({"URL": url, "POOL_TIMEOUT": 0}, "POOL_TIMEOUT"),
            ({"URL": url, "CONNECT_TIMEOUT": "soon"}, "CONNECT_TIMEOUT"),
            ({"URL": url, "ECHO": "loud"}, "ECHO"),
            ({"URL": url, "POOLSIZE": 3}, "POOLSIZE"),
            ({"URL": "localhost:5432/test"}, "URL"),
        ]


class TestPostgresSync(ServerSuite):
    """sqlalchemy on PostgreSQL through psycopg."""

    driver_name, family, dbapi, user = "sqlalchemy", "postgresql", "psycopg", "postgres"
    database_fixture = "postgres_url"
    client_libraries = ("sqlalchemy", "psycopg")
    timeout_options: ClassVar[dict[str, Any]] = {"CONNECT_TIMEOUT": 2, "STATEMENT_TIMEOUT": 1}


class TestPostgresAsync(TestPostgresSync):
    """sqlalchemy-async on PostgreSQL through asyncpg."""

    driver_name, dbapi = "sqlalchemy-async", "asyncpg"
    client_libraries = ("sqlalchemy", "asyncpg")


class TestMariaDBSync(ServerSuite):
    """sqlalchemy on MariaDB through PyMySQL."""

    driver_name, family, dbapi, user = "sqlalchemy", "mysql", "pymysql", "root"
    database_fixture = "mariadb_url"
    client_libraries = ("sqlalchemy", "pymysql")
    timeout_options: ClassVar[dict[str, Any]] = {"CONNECT_TIMEOUT": 1, "STATEMENT_TIMEOUT": 1}


class TestMariaDBAsync(TestMariaDBSync):
    """sqlalchemy-async on MariaDB through aiomysql."""

    driver_name, dbapi = "sqlalchemy-async", "aiomysql"
    client_libraries = ("sqlalchemy", "aiomysql")


# SQLite has no password: the one credential_options() puts in the query is ignored, with a
# warning that says so.
@pytest.mark.filterwarnings("ignore:Query string argument")
class TestSQLiteSync(RoundTrips, DriverComplianceSuite):
    """sqlalchemy on a SQLite file (pysqlite, in the standard library)."""

    driver_name = "sqlalchemy"
    distribution = "opa-driver-sqlalchemy"
    scheme: ClassVar[str] = "sqlite"
    client_libraries = ("sqlalchemy", "sqlite3")
    opt_outs: ClassVar[dict[str, str]] = {
        case: f"SQLite is a file opened in process: no network, so {what}"
        for case, what in (
            ("dropped-connections", "no connection a proxy could drop"),
            ("silent-host", "no host that could stop answering"),
            ("recovery", "no server to come back"),
            ("host-check", "no host for LOAD auto to probe (test_auto_opens_the_file instead)"),
        )
    }

    @pytest.fixture
    def live_options(self, sqlite_url: str) -> dict[str, Any]:
        return {"URL": sqlite_url.replace("sqlite", self.scheme, 1)}

    def unreachable_options(self) -> dict[str, Any]:
        # SQLite has no server: a file that cannot be opened is as unreachable as it gets.
        return {"URL": f"{self.scheme}:///{MISSING_FOLDER}/test.db"}

    def credential_options(self, password: str) -> dict[str, Any]:
        return {"URL": f"{self.scheme}:///{MISSING_FOLDER}/test.db?password={password}"}

    def refused_options(self, live_options: dict[str, Any], password: str) -> dict[str, Any]:
        # No login to refuse: the database refused is a file that cannot be opened.
        return self.credential_options(password)

    def invalid_options(self) -> list[tuple[dict[str, Any], str]]:
        url = f"{self.scheme}:///test.db"
        return [
            ({"URL": url, "POOL_SIZE": 0}, "POOL_SIZE"),
            ({"URL": url, "STATEMENT_TIMEOUT": -1}, "STATEMENT_TIMEOUT"),
            ({"URL": "test.db"}, "URL"),
        ]

    def test_auto_opens_the_file(self) -> None:
        """What applies of host-check to SQLite, which has no server to check: LOAD auto opens
        the file, and a file that cannot be opened fails start-up, naming the component and
        the file."""
        components = self.make_components("auto", self.unreachable_options())
        components.resolve()
        driver = components.get(self.component_name).driver
        assert driver is not None and driver.reachability_targets() == []
        with pytest.raises(ComponentError) as caught:
            import asyncio

            asyncio.run(components.start())
        assert self.component_name in str(caught.value)
        assert str(MISSING_FOLDER) in str(caught.value)


class TestSQLiteAsync(TestSQLiteSync):
    """sqlalchemy-async on a SQLite file through aiosqlite."""

    driver_name, scheme = "sqlalchemy-async", "sqlite+aiosqlite"
    client_libraries = ("sqlalchemy", "aiosqlite", "sqlite3")
