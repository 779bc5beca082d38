"""Which errors mean "the database is not there" (an outage, 503) and which are the app's own.

SQLAlchemy raises ``OperationalError`` both for a server that went away and for a database
that does not exist, and MySQL's DB-APIs even for some bad statements; the DB-API's own code
tells them apart. SQLAlchemy is imported inside the functions: this module is loaded with
the driver's entry point.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

MYSQL_OUTAGE_CODES = frozenset({1040, 1053, 1927, 2002, 2003, 2006, 2013, 2055})
"""Too many connections, server shutdown, connection killed, cannot connect (socket, TCP),
server gone away, connection lost during a query, lost at the handshake."""

MYSQL_CANNOT_CONNECT = 2003

PG_OUTAGE_STATES = frozenset({"53300", "57P01", "57P02", "57P03"})
"""Too many connections, admin or crash shutdown, cannot connect now; class 08 (connection
exceptions) counts as a whole."""

PG_REFUSALS = ("does not exist", "authentication failed", "no pg_hba.conf entry")
"""What a server says when it is there but refuses this login or database: a setting to fix,
not an outage. libpq reports these at connect without a SQLSTATE, in the message only."""


def unavailable_classes(family: str) -> tuple[type[Exception], ...]:
    """The exception classes an outage of a *family* database raises through the engine.

    SQLite has no server: only a pool that stays exhausted counts. The others raise
    SQLAlchemy's own classes only, because :func:`normalize_outages` makes them.
    """
    from sqlalchemy import exc

    if family == "sqlite":
        return (exc.TimeoutError,)
    return (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError, exc.TimeoutError)


def normalize_outages(
    engine: Any, family: str, dbapi_connect: Callable[..., Any] | None = None
) -> None:
    """Make every outage of *engine* surface as ``sqlalchemy.exc.OperationalError``.

    Two DB-APIs let outages out under other classes: asyncpg raises the socket's own
    ``ConnectionRefusedError`` when it cannot connect (SQLAlchemy wraps only DB-API errors
    there), and a connection lost mid-statement comes out as SQLAlchemy's generic
    ``DBAPIError``. Without this an outage would answer 500, or a broad class like
    ``OSError`` would have to answer 503 for the whole app. *dbapi_connect* opens the
    DB-API connection in place of the dialect's own ``connect``.
    """
    from sqlalchemy import event, exc

    if family == "sqlite":
        return

    @event.listens_for(engine, "do_connect")
    def connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return (dbapi_connect or dialect.connect)(*cargs, **cparams)
        except (ConnectionError, TimeoutError) as error:
            message = f"cannot connect: {type(error).__name__}: {error}"
            # MySQL's DB-APIs carry the error code first; 2003 is "cannot connect".
            args = (MYSQL_CANNOT_CONNECT, message) if family in ("mysql", "mariadb") else (message,)
            raise dialect.loaded_dbapi.OperationalError(*args) from error

    @event.listens_for(engine, "handle_error")
    def classify(context: Any) -> Any:
        wrapped = context.sqlalchemy_exception
        if wrapped is None or isinstance(wrapped, exc.OperationalError | exc.InterfaceError):
            return None
        if not (context.is_disconnect or is_outage(wrapped, family)):
            return None
        return exc.OperationalError(
            context.statement,
            context.parameters,
            context.original_exception,
            hide_parameters=engine.hide_parameters,
            connection_invalidated=context.is_disconnect,
        )


def is_outage(error: BaseException, family: str) -> bool:
    """Whether *error*, raised by a *family* database, means that the server is not there."""
    from sqlalchemy import exc

    if isinstance(error, exc.TimeoutError | exc.DisconnectionError):
        return True
    if family == "sqlite":
        return False
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    if not isinstance(error, exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    original = error.orig
    if family in ("mysql", "mariadb"):
        code = original.args[0] if original is not None and original.args else None
        return code in MYSQL_OUTAGE_CODES
    if family == "postgresql":
        return _is_pg_outage(error, original)
    return isinstance(error, exc.OperationalError | exc.InterfaceError)


def _is_pg_outage(error: BaseException, original: BaseException | None) -> bool:
    from sqlalchemy import exc

    state = getattr(original, "sqlstate", None)
    if state:
        return str(state).startswith("08") or state in PG_OUTAGE_STATES
    if isinstance(original, ConnectionError | TimeoutError) or isinstance(
        error.__cause__, ConnectionError | TimeoutError
    ):
        return True
    if not isinstance(error, exc.OperationalError | exc.InterfaceError):
        return False
    message = str(original)
    return not any(refusal in message for refusal in PG_REFUSALS)


def aiomysql_creator(
    engine: list[Any], connect_args: dict[str, Any], connect: float, answer: float | None
) -> Any:
    """An ``async_creator`` for ``create_async_engine`` that opens aiomysql connections
    bounded by *connect* seconds (MySQL's "cannot connect", 2003), each then bounded by
    *answer* seconds per exchange with the server (:func:`aiomysql_connection_class`).

    aiomysql's ``connect_timeout`` bounds the TCP connect only: a server that accepts and then
    says nothing would hold the handshake, and the request, for ever. *engine* holds the
    engine once made (the URL's parameters come from its dialect, as SQLAlchemy's own connect
    takes them); *connect_args* are added to them.
    """
    import aiomysql  # type: ignore[import-untyped]

    async def creator() -> Any:
        sync_engine = engine[0].sync_engine
        cargs, cparams = sync_engine.dialect.create_connect_args(sync_engine.url)
        try:
            connection = await asyncio.wait_for(
                aiomysql.connect(*cargs, **(cparams | connect_args)), connect
            )
        except TimeoutError as error:
            message = f"cannot connect: no handshake within {connect:g}s"
            raise aiomysql.OperationalError(MYSQL_CANNOT_CONNECT, message) from error
        if answer is not None:
            connection.__class__ = aiomysql_connection_class(answer)
        return connection

    return creator


AIOMYSQL_EXCHANGES = (
    "query",
    "next_result",
    "ping",
    "commit",
    "rollback",
    "begin",
    "autocommit",
    "select_db",
    "show_warnings",
    "set_charset",
)
"""The coroutine methods of ``aiomysql.Connection`` that wait for the server's answer; its
cursors run every statement through ``Connection.query`` (checked by a test)."""

MYSQL_LOST = 2013


@functools.cache
def aiomysql_connection_class(seconds: float) -> Any:
    """An ``aiomysql.Connection`` subclass whose every exchange with the server ends after
    *seconds*, closing the connection with MySQL's "lost connection" (2013), a disconnect.

    aiomysql has no read timeout: a server that stalls while its host still acknowledges the
    bytes would hold the call for ever. A connection made by ``aiomysql.connect`` is given
    this class (it adds methods only, no state).
    """
    import aiomysql

    def bounded(name: str) -> Callable[..., Any]:
        method = getattr(aiomysql.Connection, name)

        async def exchange(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await asyncio.wait_for(method(self, *args, **kwargs), seconds)
            except TimeoutError as error:
                self.close()
                message = f"Lost connection to server: no answer within {seconds:g}s"
                raise aiomysql.OperationalError(MYSQL_LOST, message) from error

        exchange.__name__ = exchange.__qualname__ = name
        return exchange

    methods = {name: bounded(name) for name in AIOMYSQL_EXCHANGES}
    return type("BoundedConnection", (aiomysql.Connection,), methods)


ANSWER_GRACE = 1.0
"""Seconds the client waits beyond ``STATEMENT_TIMEOUT`` for a psycopg server's answer: a
slow statement meets the server's own ``statement_timeout`` first, with its clean error."""


@functools.cache
def psycopg_connection_class(seconds: float) -> Any:
    """A ``psycopg.Connection`` whose every wait for the server ends after *seconds*.

    libpq keeps no client-side timeout once connected: the server's ``statement_timeout``
    bounds a slow statement, and TCP keepalives a lost link, but a server that stalls while
    its host still acknowledges the bytes would hold the call for ever. psycopg runs every
    exchange with the server (a statement, a commit, a rollback, SQLAlchemy's pre-ping)
    through ``Connection.wait``, which takes a *timeout*; this class gives one to each wait
    that has none. On expiry the connection is closed, as its state is unknown mid-exchange,
    and the error says so: SQLAlchemy sees a closed connection, a disconnect.
    """
    import psycopg

    class BoundedConnection(psycopg.Connection[Any]):
        def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("timeout") is not None or len(args) > 1:
                return super().wait(gen, *args, **kwargs)  # the caller's own bound
            started = time.monotonic()
            try:
                return super().wait(gen, *args, **(kwargs | {"timeout": seconds}))
            except psycopg.OperationalError:
                if time.monotonic() - started < seconds:
                    raise
                self.close()
                raise psycopg.OperationalError(
                    f"no answer from the server within {seconds:g}s: connection closed"
                ) from None

    return BoundedConnection
