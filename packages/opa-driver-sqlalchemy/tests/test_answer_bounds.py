"""The client-side bounds on a server's answer lean on how psycopg and aiomysql work inside;
these tests fail naming what changed when a new release stops working that way."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from opa_driver_sqlalchemy.errors import (
    AIOMYSQL_EXCHANGES,
    MYSQL_LOST,
    aiomysql_connection_class,
    psycopg_connection_class,
)

BOUND = 1.0
SLEEP = 10
"""A statement the bound must end long before it does (no timed assertion: the error's
kind says which ended it)."""


def test_psycopg_waits_go_through_connection_wait(postgres_url: str) -> None:
    """A statement runs through ``psycopg.Connection.wait``, which the bound overrides."""
    import psycopg

    assert "timeout" in inspect.signature(psycopg.Connection.wait).parameters, (
        "psycopg.Connection.wait takes no timeout any more: psycopg_connection_class "
        "cannot bound a wait for the server; find its replacement"
    )
    connection = psycopg_connection_class(BOUND).connect(postgres_url)
    with pytest.raises(psycopg.OperationalError) as caught:
        connection.execute(f"SELECT pg_sleep({SLEEP})")
    assert "no answer from the server" in str(caught.value), (
        f"a statement was not bounded ({caught.value!r}): psycopg no longer waits for the "
        "server through psycopg.Connection.wait, which psycopg_connection_class overrides"
    )
    assert connection.closed


def test_aiomysql_statements_go_through_connection_query(mariadb_url: str) -> None:
    """aiomysql's cursors run statements through ``aiomysql.Connection.query``, and every
    bounded method is a coroutine of ``aiomysql.Connection``."""
    import aiomysql
    from sqlalchemy.engine import make_url

    for name in AIOMYSQL_EXCHANGES:
        method = getattr(aiomysql.Connection, name, None)
        assert inspect.iscoroutinefunction(method), (
            f"aiomysql.Connection.{name} is no coroutine method any more: "
            "aiomysql_connection_class bounds it; update AIOMYSQL_EXCHANGES"
        )
    url = make_url(mariadb_url)

    async def scenario() -> Any:
        connection = await aiomysql.connect(
            host=url.host, port=url.port, user=url.username, db=url.database
        )
        connection.__class__ = aiomysql_connection_class(BOUND)
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(f"SELECT SLEEP({SLEEP})")
        except aiomysql.OperationalError as error:
            return error, connection.closed
        finally:
            connection.close()
        pytest.fail(f"SELECT SLEEP({SLEEP}) ran to its end", pytrace=False)

    error, closed = asyncio.run(scenario())
    assert error.args[0] == MYSQL_LOST, (
        f"a statement was not bounded ({error!r}): aiomysql's Cursor no longer runs "
        "statements through aiomysql.Connection.query, which aiomysql_connection_class bounds"
    )
    assert closed
