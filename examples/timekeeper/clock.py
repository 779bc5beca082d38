"""GET /time: the current time, formatted with a checked strftime format."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query

from opa import get_router

router = get_router()

# The directives every platform's strftime knows; anything else after a "%" is refused
# rather than passed to the C library, whose handling of unknown directives varies.
DIRECTIVES = "aAbBcdfGHIjmMpSuUVwWxXyYzZ%"
FORMAT_PATTERN = rf"^(?:[^%]|%[{DIRECTIVES}])*$"


@router.get("/time")
def current_time(
    format: Annotated[
        str,
        Query(
            min_length=1,
            max_length=64,
            pattern=FORMAT_PATTERN,
            description=f"a strftime format; directives: {', '.join('%' + d for d in DIRECTIVES)}",
        ),
    ] = "%Y-%m-%dT%H:%M:%S%z",
) -> dict[str, str]:
    """The current UTC time in *format*; an unknown directive or a lone "%" is a 422."""
    return {"format": format, "time": datetime.now(UTC).strftime(format)}
