"""FastAPI dependencies that give each request a session of its own, closed after it.

    Db = Annotated[AsyncSession, async_session("db")]

    @router.get("/items/{item_id}")
    async def read(item_id: int, db: Db) -> Item: ...

SQLAlchemy is imported when a request first asks for a session, never at import time:
this module is loaded with the driver's entry point.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import Depends

from opa import ComponentError, get_component, get_instance

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session


def session_factory(name: str, is_async: bool) -> Any:
    """The session factory of component *name*; 503 (through opa) when it is not connected.

    A component whose instance a test replaced (``opa.testing.override_instance``) gets a
    factory bound to that engine.
    """
    engine = get_instance(name)
    driver = get_component(name).driver
    factory = getattr(driver, "sessionmaker", None)
    if factory is not None and driver is not None and driver.instance is engine:
        if driver.is_async != is_async:
            right, kind = ("async_session", "an async") if driver.is_async else ("session", "a")
            raise ComponentError(
                f"component {name!r} (driver {driver.name}) makes {kind} engine; "
                f"use opa_driver_sqlalchemy.{right}({name!r}) for its sessions"
            )
        return factory
    if is_async:
        from sqlalchemy.ext.asyncio import async_sessionmaker

        return async_sessionmaker(engine, expire_on_commit=False)
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(engine, expire_on_commit=False)


def session(name: str) -> Any:
    """A ``Depends`` that yields a ``Session`` of ``sqlalchemy`` component *name* per request.

    The session is closed once the response is built, which rolls back what was not
    committed and hands its connection back to the pool. Use it in ``def`` routes: FastAPI
    runs them, and this dependency, in its thread pool.
    """

    def dependency() -> Iterator[Session]:
        with session_factory(name, is_async=False)() as opened:
            yield opened

    dependency.__name__ = f"session_{name}"
    return Depends(dependency)


def async_session(name: str) -> Any:
    """A ``Depends`` that yields an ``AsyncSession`` of ``sqlalchemy-async`` component *name*
    per request, closed (rolled back unless committed) once the response is built."""

    async def dependency() -> AsyncIterator[AsyncSession]:
        async with session_factory(name, is_async=True)() as opened:
            yield opened

    dependency.__name__ = f"async_session_{name}"
    return Depends(dependency)
