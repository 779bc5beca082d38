"""opa-driver-sqlalchemy: the ``sqlalchemy`` (Engine) and ``sqlalchemy-async`` (AsyncEngine)
drivers, and the FastAPI dependencies that give each request a session.

Importing this package is cheap: SQLAlchemy and the DB-API libraries are imported when a
component connects.
"""

from opa_driver_sqlalchemy.driver import AsyncSQLAlchemyDriver, SQLAlchemyDriver
from opa_driver_sqlalchemy.options import AsyncSQLOptions, SQLOptions
from opa_driver_sqlalchemy.sessions import async_session, session

__version__ = "0.1.0"

__all__ = [
    "AsyncSQLAlchemyDriver",
    "AsyncSQLOptions",
    "SQLAlchemyDriver",
    "SQLOptions",
    "async_session",
    "session",
]
