"""GET /month/{n}: the English name of month *n*, 1 to 12."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from opa import get_router

router = get_router()

# Spelled out rather than taken from the calendar module, whose names follow the locale.
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@router.get("/month/{n}")
def month(n: Annotated[int, Path(ge=1, le=12)]) -> dict[str, int | str]:
    """Month *n*'s name; 0, 13 or a non-number is a 422 before this code runs."""
    return {"month": n, "name": MONTHS[n - 1]}
