"""FastAPI dependencies: declare a component as a typed route parameter.

Counter = Annotated[walrus.Database, Instance("walrus")]

@router.get("/count")
def count(db: Counter) -> int: ...
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends

from opa._runtime import get_instance


def Instance(name: str) -> Any:
    """A ``Depends`` that supplies component *name*'s instance (503 when unavailable)."""

    # async: a plain def would be sent to the thread pool on every request, for a dict read.
    async def dependency() -> Any:
        return get_instance(name)

    dependency.__name__ = f"instance_{name}"
    return Depends(dependency)
