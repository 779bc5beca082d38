"""The databases the tests run on: a database of their own on the machine's PostgreSQL and
MariaDB (a private PostgreSQL that a test may stop is ``opa.testing.PostgresServer``)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

from opa.testing import skip_or_fail

POSTGRES = os.environ.get("OPA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MARIADB = os.environ.get("OPA_TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306/test")
"""The machine's servers (trust auth; root with an empty password), database ``test``."""


def with_database(url: str, database: str, dbapi: str | None = None) -> str:
    """*url* pointing at *database*, with ``+dbapi`` when given."""
    scheme, rest = url.split("://", 1)
    family = scheme.split("+", 1)[0]
    server = rest.rsplit("/", 1)[0]
    return f"{family}{'+' + dbapi if dbapi else ''}://{server}/{database}"


@contextlib.contextmanager
def own_database(url: str) -> Iterator[str]:
    """A new database on the server of *url* for the block (dropped after), as a URL.

    Tests create tables in it; the machine's ``test`` database is never written to.
    """
    from sqlalchemy import create_engine

    sync = with_database(url, url.rsplit("/", 1)[1], "psycopg" if "postgres" in url else "pymysql")
    name = f"opa_sql_{secrets.token_hex(4)}"
    admin = create_engine(sync, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
    except Exception as error:
        admin.dispose()
        skip_or_fail(f"no database server at {url}: {type(error).__name__}: {error}")
    try:
        yield with_database(url, name)
    finally:
        with admin.connect() as connection:
            if "postgres" in url:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            else:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()
