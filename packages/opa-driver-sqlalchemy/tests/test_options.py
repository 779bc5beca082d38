"""Options become the engine arguments each DB-API understands; mistakes are named."""

from __future__ import annotations

import asyncio
import secrets
import sys
from typing import Any

import pytest

from opa import ComponentError, OptionsError
from opa.testing import captured_logs, make_driver
from opa_driver_sqlalchemy import (
    AsyncSQLAlchemyDriver,
    AsyncSQLOptions,
    SQLAlchemyDriver,
    SQLOptions,
)
from opa_driver_sqlalchemy.options import engine_arguments


@pytest.mark.parametrize(
    ("options", "url"),
    [
        (SQLOptions(URL="postgresql://db/app"), "postgresql+psycopg://db/app"),
        (AsyncSQLOptions(URL="postgresql://db/app"), "postgresql+asyncpg://db/app"),
        (SQLOptions(URL="mysql://root@db/app"), "mysql+pymysql://root@db/app"),
        (AsyncSQLOptions(URL="mariadb://root@db/app"), "mariadb+aiomysql://root@db/app"),
        (SQLOptions(URL="sqlite:///app.db"), "sqlite:///app.db"),
        (AsyncSQLOptions(URL="sqlite:///app.db"), "sqlite+aiosqlite:///app.db"),
        (AsyncSQLOptions(URL="postgresql+psycopg://db/app"), "postgresql+psycopg://db/app"),
    ],
)
def test_a_url_without_driver_gets_the_one_its_extra_installs(
    options: SQLOptions, url: str
) -> None:
    """postgresql:// is psycopg (sync) or asyncpg (async), mysql:// PyMySQL or aiomysql."""
    assert engine_arguments(options)[0] == url


def test_timeouts_reach_each_dbapi_under_its_own_names() -> None:
    """CONNECT_TIMEOUT and STATEMENT_TIMEOUT become what psycopg, asyncpg and PyMySQL take."""
    opts: dict[str, Any] = {"CONNECT_TIMEOUT": 2.5, "STATEMENT_TIMEOUT": 1.5}
    psycopg = engine_arguments(SQLOptions(URL="postgresql://db/app", **opts))[1]["connect_args"]
    assert psycopg == {"connect_timeout": 3, "options": "-c statement_timeout=1500"}
    asyncpg = engine_arguments(AsyncSQLOptions(URL="postgresql://db/app", **opts))[1][
        "connect_args"
    ]
    assert asyncpg == {
        "timeout": 2.5,
        "command_timeout": 1.5,
        "server_settings": {"statement_timeout": "1500"},
    }
    pymysql = engine_arguments(SQLOptions(URL="mysql://db/app", **opts))[1]["connect_args"]
    assert pymysql == {"connect_timeout": 2.5, "read_timeout": 1.5, "write_timeout": 1.5}
    none = engine_arguments(SQLOptions(URL="postgresql://db/app", STATEMENT_TIMEOUT=None))
    assert "options" not in none[1]["connect_args"]


def test_pool_options_reach_the_pool() -> None:
    """Pool size, overflow, timeout, recycle and pre-ping are passed as given."""
    options = SQLOptions(
        URL="postgresql://db/app", POOL_SIZE=7, MAX_OVERFLOW=3, POOL_TIMEOUT=2, POOL_RECYCLE=None
    )
    kwargs = engine_arguments(options)[1]
    assert kwargs["pool_size"] == 7 and kwargs["max_overflow"] == 3
    assert kwargs["pool_timeout"] == 2 and kwargs["pool_recycle"] == -1
    assert kwargs["pool_pre_ping"] is True


def test_an_in_memory_sqlite_takes_no_pool_size() -> None:
    """SQLAlchemy keeps one connection for an in-memory SQLite: no size, overflow or timeout."""
    for url in ("sqlite://", "sqlite:///:memory:"):
        kwargs = engine_arguments(SQLOptions(URL=url))[1]
        assert not {"pool_size", "max_overflow", "pool_timeout"} & set(kwargs)


@pytest.mark.parametrize(
    ("driver", "url", "fix"),
    [
        (AsyncSQLAlchemyDriver, "mysql+pymysql://db/app", "use mysql+aiomysql://"),
        (SQLAlchemyDriver, "postgresql+asyncpg://db/app", "use postgresql+psycopg://"),
        (SQLAlchemyDriver, "sqlite+aiosqlite:///app.db", "the driver sqlalchemy-async"),
    ],
)
def test_a_dbapi_of_the_other_kind_is_refused(driver: Any, url: str, fix: str) -> None:
    """A sync DB-API in the async driver (or the reverse) fails start-up, saying what to use."""
    with pytest.raises(OptionsError) as caught:
        make_driver(driver, {"URL": url}, component="db")
    message = str(caught.value)
    assert "'db'" in message and "URL" in message and fix in message


def test_echo_logs_sql_through_opa_and_never_the_password(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """ECHO sends SQL to opa's masked log, not to stdout, and the URL's password is not in it.

    The machine's PostgreSQL trusts local logins, so a password in the URL is accepted.
    """
    password = f"pw-{secrets.token_hex(8)}"
    url = postgres_url.replace("postgres@", f"postgres:{password}@", 1)
    with captured_logs() as logs:
        sync = make_driver(SQLAlchemyDriver, {"URL": url, "ECHO": "debug"})
        sync.connect()
        sync.validate()
        sync.disconnect()
        driver = make_driver(AsyncSQLAlchemyDriver, {"URL": url, "ECHO": True})

        async def lifecycle() -> None:
            await driver.connect()
            await driver.validate()
            await driver.disconnect()

        asyncio.run(lifecycle())
    text = logs.getvalue()
    assert text.count("SELECT 1") >= 2, text
    assert password not in text
    printed = capsys.readouterr()
    assert "SELECT 1" not in printed.out + printed.err


def test_echo_off_logs_no_sql(sqlite_url: str) -> None:
    """Without ECHO the engine logs nothing, even with opa's log at DEBUG."""
    with captured_logs() as logs:
        driver = make_driver(SQLAlchemyDriver, {"URL": sqlite_url})
        driver.connect()
        driver.validate()
        driver.disconnect()
    assert "SELECT 1" not in logs.getvalue()


@pytest.mark.parametrize(
    ("driver", "url", "module", "extra"),
    [
        (AsyncSQLAlchemyDriver, "postgresql://db/app", "asyncpg", "postgresql"),
        (SQLAlchemyDriver, "mysql://db/app", "pymysql", "mysql"),
        (AsyncSQLAlchemyDriver, "sqlite:///app.db", "aiosqlite", "sqlite"),
    ],
)
def test_a_missing_dbapi_names_the_extra_to_install(
    driver: Any, url: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without its DB-API library, connecting says which extra brings it; disconnect still works."""
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    component = make_driver(driver, {"URL": url}, component="db")
    with pytest.raises(ComponentError) as caught:
        if component.is_async:
            asyncio.run(component.connect())
        else:
            component.connect()
    message = str(caught.value)
    assert "'db'" in message and f"opa-driver-sqlalchemy[{extra}]" in message
    # opa disconnects a component whose connect failed: there is no engine to dispose.
    asyncio.run(component.disconnect()) if component.is_async else component.disconnect()
