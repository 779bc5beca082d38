"""Outages are told apart from the app's own database errors, on real servers."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from opa.testing import closed_port, make_driver
from opa_driver_sqlalchemy import AsyncSQLAlchemyDriver, SQLAlchemyDriver
from opa_driver_sqlalchemy.driver import SQLAlchemyDriverBase
from sql_support import with_database

SERVERS = {
    "postgresql": ("postgres", "postgresql_url"),
    "mysql": ("root", "mariadb_url"),
}
SYNC = {"postgresql": "psycopg", "mysql": "pymysql"}
ASYNC = {"postgresql": "asyncpg", "mysql": "aiomysql"}


def error_of(driver: SQLAlchemyDriverBase, statement: str = "SELECT 1") -> Exception:
    """What running *statement* on a fresh engine of *driver* raises (fails when nothing)."""

    async def run_async() -> None:
        await driver.connect()
        try:
            async with driver.instance.connect() as connection:
                await connection.exec_driver_sql(statement)
        finally:
            await driver.disconnect()

    def run_sync() -> None:
        driver.connect()
        try:
            with driver.instance.connect() as connection:
                connection.exec_driver_sql(statement)
        finally:
            driver.disconnect()

    try:
        asyncio.run(run_async()) if driver.is_async else run_sync()
    except Exception as error:
        return error
    pytest.fail(f"{statement!r} on {driver.opts.URL} raised nothing")


def drivers(url: str, family: str, **opts: Any) -> list[SQLAlchemyDriverBase]:
    """A sync and an async driver on *url* (a URL without +driver), with *opts*."""
    return [
        make_driver(
            SQLAlchemyDriver, {"URL": url.replace(family, f"{family}+{SYNC[family]}", 1), **opts}
        ),
        make_driver(
            AsyncSQLAlchemyDriver,
            {"URL": url.replace(family, f"{family}+{ASYNC[family]}", 1), **opts},
        ),
    ]


@pytest.fixture(params=["postgresql", "mysql"])
def server(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    """(family, user, URL of this session's own database) for each server."""
    family = request.param
    fixture = "postgres_url" if family == "postgresql" else "mariadb_url"
    user = "postgres" if family == "postgresql" else "root"
    return family, user, request.getfixturevalue(fixture)


def test_a_refused_connection_is_an_outage(server: tuple[str, str, str]) -> None:
    """No server on the port: both drivers raise an error the app answers with 503."""
    family, user, _ = server
    url = f"{family}://{user}@127.0.0.1:{closed_port()}/test"
    for driver in drivers(url, family):
        error = error_of(driver)
        assert isinstance(error, driver.unavailable_errors()), repr(error)
        assert driver.is_unavailable(error), repr(error)


def test_an_unknown_database_is_not_an_outage(server: tuple[str, str, str]) -> None:
    """A server that is there but has no such database: a setting to fix, not a 503."""
    family, _, url = server
    for driver in drivers(with_database(url, "opa_no_such_database"), family):
        error = error_of(driver)
        assert not driver.is_unavailable(error), repr(error)


def test_a_bad_statement_is_not_an_outage(server: tuple[str, str, str]) -> None:
    """SQL that the server refuses is the app's error (500), whatever class the DB-API gives it."""
    family, _, url = server
    for driver in drivers(url, family):
        for statement in ("SELEC 1", "SELECT no_such_column FROM no_such_table"):
            error = error_of(driver, statement)
            assert not driver.is_unavailable(error), repr(error)


def test_a_refused_login_is_not_an_outage(mariadb_url: str) -> None:
    """MariaDB refusing root's login with a wrong password: a setting to fix, not a 503."""
    url = mariadb_url.replace("root@", "root:wrong-password@", 1)
    for driver in drivers(url, "mysql"):
        error = error_of(driver)
        assert not driver.is_unavailable(error), repr(error)


def test_a_statement_timeout_ends_a_slow_statement(server: tuple[str, str, str]) -> None:
    """STATEMENT_TIMEOUT ends a statement that runs longer, where the DB-API supports it."""
    family, _, url = server
    sleep = "SELECT pg_sleep(5)" if family == "postgresql" else "SELECT SLEEP(5)"
    for driver in drivers(url, family, STATEMENT_TIMEOUT=0.5):
        if driver.is_async and family == "mysql":
            continue  # aiomysql has no statement timeout: the README says so
        error = error_of(driver, sleep)
        text = f"{type(error).__name__} {error}".lower()
        assert any(word in text for word in ("timeout", "timed out", "canceling")), text


def test_sqlite_errors_are_never_outages(sqlite_url: str) -> None:
    """SQLite has no server: a missing table is the app's error, not an outage."""
    driver = make_driver(SQLAlchemyDriver, {"URL": sqlite_url})
    error = error_of(driver, "SELECT * FROM no_such_table")
    assert not isinstance(error, driver.unavailable_errors())
    assert not driver.is_unavailable(error)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("family", ["postgresql", "mysql"])
def test_a_server_that_never_answers_is_an_outage(family: str) -> None:
    """A host that accepts TCP and then says nothing ends in an outage error, not a hang.

    aiomysql bounds only the TCP connect itself: the driver bounds its handshake by
    CONNECT_TIMEOUT; PyMySQL reads the handshake under its read timeout (STATEMENT_TIMEOUT).
    """
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshakes; nothing ever answers
        port = silent.getsockname()[1]
        url = f"{family}://user@127.0.0.1:{port}/test"
        for driver in drivers(url, family, CONNECT_TIMEOUT=1, STATEMENT_TIMEOUT=1):
            error = error_of(driver)
            assert isinstance(error, driver.unavailable_errors()), repr(error)
            assert driver.is_unavailable(error), repr(error)
