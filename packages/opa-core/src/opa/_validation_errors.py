"""422 answers for invalid requests that can always be rendered as JSON.

FastAPI's own handler echoes each invalid input. Python's JSON parser reads ``NaN``,
``Infinity`` and ``1e999`` as non-finite floats, which strict JSON cannot carry, so such a
body turned the 422 into a 500. Here non-finite numbers are echoed as strings instead.
A lone surrogate (``"\\ud800"``) cannot be written as UTF-8 either: such a string is
echoed with the surrogate spelled as its escape. (Routes of :func:`opa.get_router` refuse
those bodies before validation; this covers routes built otherwise.)
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def _text(value: str) -> str:
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _renderable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, list):
        return [_renderable(item) for item in value]
    if isinstance(value, dict):
        return {_renderable(key): _renderable(item) for key, item in value.items()}
    return value


async def request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 body, with non-finite numbers and lone surrogates written as text."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": _renderable(jsonable_encoder(errors))}, status_code=422)
