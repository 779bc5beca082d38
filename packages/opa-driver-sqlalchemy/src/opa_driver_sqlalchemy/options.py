"""The ``OPTS`` of a ``sqlalchemy`` or ``sqlalchemy-async`` component, and what they become.

Nothing here imports SQLAlchemy: options are checked when configuration is read, before a
component connects, and the entry point of the driver must stay cheap to load.
:func:`engine_arguments` turns checked options into the URL and keyword arguments that
``create_engine`` (or ``create_async_engine``) takes.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_DBAPI = {
    False: {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"},
    True: {
        "postgresql": "asyncpg",
        "mysql": "aiomysql",
        "mariadb": "aiomysql",
        "sqlite": "aiosqlite",
    },
}
"""Per async flag, the DB-API library a URL without ``+driver`` gets: the one the extra of
that family installs, not SQLAlchemy's own default (psycopg2, mysqlclient)."""

SYNC_ONLY = frozenset({"psycopg2", "psycopg2cffi", "pg8000", "pymysql", "mysqldb", "pysqlite"})
ASYNC_ONLY = frozenset({"asyncpg", "psycopg_async", "aiomysql", "asyncmy", "aiosqlite"})

EXTRAS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}
"""Database family -> the extra of opa-driver-sqlalchemy that installs its DB-API libraries."""

_SCHEME = re.compile(r"^(?P<family>[a-z][a-z0-9_]*)(?:\+(?P<dbapi>[a-z0-9_]+))?://")


def url_parts(url: str) -> tuple[str, str | None]:
    """The database family and the ``+driver`` of *url* (None when it names none)."""
    match = _SCHEME.match(url)
    if match is None:
        raise ValueError(
            "must be a SQLAlchemy URL, dialect[+driver]://user:password@host:port/database "
            "(postgresql+asyncpg://..., mysql+pymysql://..., sqlite:///path/to/file.db)"
        )
    return match["family"], match["dbapi"]


def is_memory_sqlite(url: str) -> bool:
    """Whether *url* is an in-memory SQLite database, which SQLAlchemy pools differently."""
    family, _ = url_parts(url)
    if family != "sqlite":
        return False
    database = url.split("://", 1)[1].lstrip("/").split("?", 1)[0]
    return database in ("", ":memory:") or "mode=memory" in url


class SQLOptions(BaseModel):
    """``OPTS`` of a ``sqlalchemy`` component (the README has the table)."""

    model_config = ConfigDict(extra="forbid")
    is_async: ClassVar[bool] = False

    URL: str = Field(min_length=1)
    """``dialect[+driver]://user:password@host:port/database``; without ``+driver``, the
    DB-API of the family's extra (psycopg or asyncpg, PyMySQL or aiomysql, aiosqlite)."""
    POOL_SIZE: int = Field(default=5, ge=1)
    """Connections the pool keeps open."""
    MAX_OVERFLOW: int = Field(default=10, ge=0)
    """Connections opened beyond ``POOL_SIZE`` under load, closed when handed back."""
    POOL_TIMEOUT: float = Field(default=10.0, gt=0)
    """Seconds a request waits for a connection when all are busy."""
    POOL_RECYCLE: float | None = Field(default=1800.0, gt=0)
    """Seconds after which a connection is replaced before use; null: never."""
    POOL_PRE_PING: bool = True
    """Test each connection as it leaves the pool and replace a dead one."""
    CONNECT_TIMEOUT: float = Field(default=5.0, gt=0)
    """Seconds to open a connection (psycopg counts whole seconds, at least 2)."""
    STATEMENT_TIMEOUT: float | None = Field(default=30.0, gt=0)
    """Seconds a statement may run, and the client waits for an answer (not SQLite)."""
    ECHO: bool | Literal["debug"] = False
    """Log each statement (true), and rows and pool events too (debug), through opa's log."""
    EXPIRE_ON_COMMIT: bool = False
    """Whether sessions expire loaded objects on commit."""

    @field_validator("URL")
    @classmethod
    def _check_url(cls, value: str) -> str:
        with_dbapi(value, cls.is_async)
        return value


class AsyncSQLOptions(SQLOptions):
    """``OPTS`` of a ``sqlalchemy-async`` component: the same, with an asyncio DB-API."""

    is_async: ClassVar[bool] = True


def with_dbapi(url: str, is_async: bool) -> str:
    """*url* with the ``+driver`` filled in for its family, or a ValueError saying which
    driver to use instead when the URL's suits the other kind of engine."""
    family, dbapi = url_parts(url)
    if dbapi is None:
        dbapi = DEFAULT_DBAPI[is_async].get(family)
        if dbapi is None:
            return url
        return f"{family}+{dbapi}{url[len(family) :]}"
    wrong = SYNC_ONLY if is_async else ASYNC_ONLY
    if dbapi in wrong:
        kind, other = ("an async", "sqlalchemy") if is_async else ("a sync", "sqlalchemy-async")
        suggestion = DEFAULT_DBAPI[is_async].get(family)
        fix = f"use {family}+{suggestion}://, or " if suggestion else ""
        raise ValueError(
            f"{family}+{dbapi} is not {kind} DB-API driver; {fix}the driver {other} for it"
        )
    return url


def connect_args(dbapi: str | None, opts: SQLOptions) -> dict[str, Any]:
    """The DB-API's own names for the connect and statement timeouts (empty where it has none)."""
    connect, statement = opts.CONNECT_TIMEOUT, opts.STATEMENT_TIMEOUT
    args: dict[str, Any] = {}
    if dbapi == "psycopg":
        # libpq counts whole seconds, and treats less than 2 as 2.
        args["connect_timeout"] = max(2, math.ceil(connect))
        if statement is not None:
            args["options"] = f"-c statement_timeout={math.ceil(statement * 1000)}"
    elif dbapi == "asyncpg":
        args["timeout"] = connect
        if statement is not None:
            # command_timeout is kept by the client, so it also bounds a server that stalls.
            args["command_timeout"] = statement
            args["server_settings"] = {"statement_timeout": str(math.ceil(statement * 1000))}
    elif dbapi == "pymysql":
        args["connect_timeout"] = connect
        if statement is not None:
            args["read_timeout"] = args["write_timeout"] = statement
    elif dbapi == "aiomysql":
        args["connect_timeout"] = connect
    return args


def engine_arguments(opts: SQLOptions) -> tuple[str, dict[str, Any]]:
    """The URL and the keyword arguments of ``create_engine`` for *opts*.

    An in-memory SQLite database gets SQLAlchemy's single-connection pool, which takes no
    size, overflow or timeout.
    """
    url = with_dbapi(opts.URL, opts.is_async)
    kwargs: dict[str, Any] = {
        "pool_pre_ping": opts.POOL_PRE_PING,
        "pool_recycle": -1 if opts.POOL_RECYCLE is None else opts.POOL_RECYCLE,
        "connect_args": connect_args(url_parts(url)[1], opts),
    }
    if not is_memory_sqlite(url):
        kwargs |= {
            "pool_size": opts.POOL_SIZE,
            "max_overflow": opts.MAX_OVERFLOW,
            "pool_timeout": opts.POOL_TIMEOUT,
        }
    return url, kwargs
