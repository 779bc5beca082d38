"""opa's ``sqlalchemy`` and ``sqlalchemy-async`` drivers: an ``Engine`` or an ``AsyncEngine``.

Each component also carries a session factory (``sessionmaker``), which the dependencies of
:mod:`opa_driver_sqlalchemy.sessions` use to give every request a session of its own.
This module is what the ``opa.drivers`` entry points load, so it stays cheap: SQLAlchemy
and the DB-API libraries are imported on ``connect()``.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from opa import ComponentError, Driver, instrument_once
from opa_driver_sqlalchemy.errors import (
    ANSWER_GRACE,
    aiomysql_creator,
    is_outage,
    normalize_outages,
    psycopg_connection_class,
    unavailable_classes,
)
from opa_driver_sqlalchemy.options import (
    EXTRAS,
    AsyncSQLOptions,
    SQLOptions,
    engine_arguments,
    url_parts,
)

SQL_PORTS: dict[str, int] = {}
"""URL scheme -> default port, for every ``+driver`` the extras bring (``LOAD: auto``)."""
for _family, _port, _dbapis in (
    ("postgresql", 5432, ("", "psycopg", "psycopg2", "asyncpg", "pg8000", "psycopg_async")),
    ("mysql", 3306, ("", "pymysql", "aiomysql", "asyncmy", "mysqldb", "mysqlconnector")),
    ("mariadb", 3306, ("", "pymysql", "aiomysql", "asyncmy", "mysqldb", "mysqlconnector")),
):
    for _dbapi in _dbapis:
        SQL_PORTS[f"{_family}+{_dbapi}" if _dbapi else _family] = _port

PROBE = "SELECT 1"


class SQLAlchemyDriverBase(Driver):
    """What both drivers share: options, ports, outage errors and the echo switch."""

    contract_version = 1
    default_ports: ClassVar[dict[str, int]] = SQL_PORTS

    opts: SQLOptions

    def __init__(self, component: str, opts: Any) -> None:
        super().__init__(component, opts)
        self.sessionmaker: Any = None
        """``sessionmaker`` (``async_sessionmaker`` for sqlalchemy-async) bound to the
        engine; None until connected."""

    @classmethod
    def instrument_tracing(cls) -> None:
        """A span for each statement of every engine created from now on (``connect`` makes
        the component's), sync and async.

        The instrumentation declares SQLAlchemy below 2.1 and would decline 2.1, which it
        traces all the same: tests/test_tracing.py proves it on the newest release.
        """
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        instrument_once(SQLAlchemyInstrumentor(), skip_dep_check=True)

    @property
    def family(self) -> str:
        """The database family of the URL: postgresql, mysql, mariadb, sqlite, ..."""
        return url_parts(self.opts.URL)[0]

    def _engine_arguments(self) -> tuple[str, dict[str, Any]]:
        url, kwargs = engine_arguments(self.opts)
        # A logging name of its own, so ECHO turns on this component's logger alone.
        return url, kwargs | {"logging_name": self.component}

    def _missing_dbapi(self, error: ImportError) -> ComponentError:
        """A sentence naming the extra to install, instead of the DB-API's ImportError."""
        extra = EXTRAS.get(self.family)
        fix = f"pip install 'opa-driver-sqlalchemy[{extra}]'" if extra else "install it"
        return ComponentError(
            f"component {self.component!r}: the DB-API library for {self.family} "
            f"({error.name or error}) is not installed: {fix}"
        )

    def _prepare(self, engine: Any) -> None:
        """Outages as SQLAlchemy's own classes, and ECHO; *engine* is a sync ``Engine``."""
        connect = None
        statement = self.opts.STATEMENT_TIMEOUT
        if engine.dialect.driver == "psycopg" and statement is not None:
            # libpq has no client-side bound on an answer: psycopg's waits get one.
            connect = psycopg_connection_class(statement + ANSWER_GRACE).connect
        normalize_outages(engine, self.family, connect)
        self._set_echo(engine)

    def _set_echo(self, engine: Any) -> None:
        """ECHO through the standard logger that opa's masking sink already reads.

        SQLAlchemy's own ``echo=True`` adds a handler that writes to stdout past opa's log.
        """
        level = {False: logging.NOTSET, True: logging.INFO, "debug": logging.DEBUG}
        engine.logger.setLevel(level[self.opts.ECHO])
        engine.pool.logger.setLevel(level[self.opts.ECHO])

    def unavailable_errors(self) -> tuple[type[Exception], ...]:
        return unavailable_classes(self.family)

    def is_unavailable(self, error: Exception) -> bool:
        """Whether *error* means the database is not there (503), not a fault of the app.

        An unknown database, a refused login or a bad statement is not an outage, even when
        its class (``OperationalError``) is one that outages raise.
        """
        return is_outage(error, self.family)


class SQLAlchemyDriver(SQLAlchemyDriverBase):
    """A SQLAlchemy ``Engine`` on a ``QueuePool``; ``sessionmaker`` makes ``Session`` objects."""

    name = "sqlalchemy"
    is_async = False
    Options = SQLOptions

    def connect(self) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.orm import sessionmaker

        url, kwargs = self._engine_arguments()
        try:
            engine = create_engine(url, **kwargs)
        except ImportError as error:
            raise self._missing_dbapi(error) from error
        self._prepare(engine)
        self.instance = engine
        self.sessionmaker = sessionmaker(engine, expire_on_commit=self.opts.EXPIRE_ON_COMMIT)

    def validate(self) -> None:
        with self.instance.connect() as connection:
            connection.exec_driver_sql(PROBE)

    def disconnect(self) -> None:
        # Also called after a failed connect, which may have made no engine.
        if self.instance is not None:
            self.instance.dispose()


class AsyncSQLAlchemyDriver(SQLAlchemyDriverBase):
    """A SQLAlchemy ``AsyncEngine``; ``sessionmaker`` makes ``AsyncSession`` objects."""

    name = "sqlalchemy-async"
    is_async = True
    Options = AsyncSQLOptions

    async def connect(self) -> None:
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

        url, kwargs = self._engine_arguments()
        made: list[Any] = []
        try:
            if url_parts(url)[1] == "aiomysql":
                # SQLAlchemy's public async_creator, so the whole handshake is bounded.
                connect_args = kwargs.pop("connect_args")
                bounds = (self.opts.CONNECT_TIMEOUT, self.opts.STATEMENT_TIMEOUT)
                creator = aiomysql_creator(made, connect_args, *bounds)
                kwargs["async_creator"] = creator
            engine = create_async_engine(url, **kwargs)
        except ImportError as error:
            raise self._missing_dbapi(error) from error
        made.append(engine)
        self._prepare(engine.sync_engine)
        self.instance = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=self.opts.EXPIRE_ON_COMMIT)

    async def validate(self) -> None:
        async with self.instance.connect() as connection:
            await connection.exec_driver_sql(PROBE)

    async def disconnect(self) -> None:
        # Also called after a failed connect, which may have made no engine.
        if self.instance is not None:
            await self.instance.dispose()
