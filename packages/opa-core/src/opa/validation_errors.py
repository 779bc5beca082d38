"""422 answers for invalid requests that can always be rendered as JSON.

FastAPI's own handler echoes each invalid input. Python's JSON parser reads ``NaN``,
``Infinity`` and ``1e999`` as non-finite floats, which strict JSON cannot carry, so such a
body turned the 422 into a 500. Here non-finite numbers are echoed as strings instead.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


async def request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 body, with non-finite numbers in it written as strings."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": _finite(jsonable_encoder(errors))}, status_code=422)
