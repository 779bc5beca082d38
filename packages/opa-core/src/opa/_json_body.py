"""JSON request bodies parsed so that no body alone can turn into a 500.

Python's parser raises ``RecursionError`` on deeply nested arrays, a plain ``ValueError`` on
an integer longer than ``sys.get_int_max_str_digits()`` digits, and accepts lone surrogates
(``"\\ud800"``), which no UTF-8 encoder can write back: a driver, a database or the 422 that
echoes the input then fails. :func:`parse_json` refuses all three as invalid JSON,
and :class:`JsonBodyRoute`, the route class of :func:`opa.get_router`, makes FastAPI's own
parsing of a model body use it, so the client gets FastAPI's 422 ``json_invalid`` with the
reason.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

MAX_JSON_DEPTH = 100
"""Arrays and objects nested deeper than this are refused: no API needs more, and deeper
input would exhaust the recursion of the code that validates or echoes it."""

# Nesting is read from the raw text with C-speed steps only: strings are cut out (their
# brackets nest nothing), then every byte but a bracket, and "{}" become "[]". What is left
# is balanced (the text parsed), and it nests at most MAX_JSON_DEPTH deep exactly when it
# is a run of groups each holding such runs one level shallower, MAX_JSON_DEPTH times
# over: a regular language. Possessive repeats never go back, so one match is one pass,
# about 7 ns a bracket, where peeling "[]" level by level copied the text 100 times.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_A_BRACKET = bytes(byte for byte in range(256) if byte not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")


def _brackets_nesting_at_most(depth: int) -> re.Pattern[bytes]:
    pattern = b""
    for _ in range(depth):
        pattern = rb"(?:\[" + pattern + rb"\])*+"
    return re.compile(pattern)


_NOT_TOO_DEEP = _brackets_nesting_at_most(MAX_JSON_DEPTH)

# Only a \uD800-\uDFFF escape, or the raw bytes of one (which json decodes with
# "surrogatepass"), can put a surrogate in a parsed string; without either the check is
# skipped.
_MAY_HOLD_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


class JsonBodyError(json.JSONDecodeError):
    """A request body that is not JSON opa accepts; ``msg`` says why.

    A :class:`json.JSONDecodeError`, so FastAPI answers it as its own 422 ``json_invalid``.
    """


def _nests_too_deep(raw: bytes) -> bool:
    """Whether arrays and objects nest deeper than MAX_JSON_DEPTH in valid JSON text *raw*."""
    # Without an escaped quote, every other run between quotes is a string; with one, only
    # the full string pattern finds where strings end.
    plain = b'\\"' not in raw
    outside = b"".join(raw.split(b'"')[::2]) if plain else _JSON_STRING.sub(b"", raw)
    brackets = outside.translate(_SQUARE, _NOT_A_BRACKET)
    return _NOT_TOO_DEEP.fullmatch(brackets) is None


def _holds_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_json(body: bytes | str) -> Any:
    """*body* parsed as JSON, or :class:`JsonBodyError` naming what is wrong with it.

    Besides malformed JSON, refused are nesting deeper than :data:`MAX_JSON_DEPTH`,
    integers longer than Python reads (``sys.get_int_max_str_digits()``, 4300 digits by
    default) and lone surrogates, which are not characters. Other values are as
    :func:`json.loads` reads them.
    """
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise JsonBodyError(exc.msg, exc.doc, exc.pos) from None
    except RecursionError:
        value = None
        deep = True
    except UnicodeDecodeError as exc:
        raise JsonBodyError(f"not UTF-8 text ({exc.reason})", "", exc.start) from None
    except ValueError:
        # The one other error json.loads raises: int() refusing a number that long.
        limit = sys.get_int_max_str_digits()
        raise JsonBodyError(f"an integer has more than {limit} digits", "", 0) from None
    else:
        # Fewer brackets than the limit cannot nest past it: most bodies stop here.
        deep = raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _nests_too_deep(raw)
    if deep:
        raise JsonBodyError(f"nested deeper than {MAX_JSON_DEPTH} levels", "", 0)
    escaped = b"\\u" in raw or b"\xed" in raw
    if escaped and _MAY_HOLD_SURROGATE.search(raw) and _holds_lone_surrogate(value):
        raise JsonBodyError("a string holds a lone surrogate (\\ud800-\\udfff)", "", 0)
    return value


class JsonBodyRequest(Request):
    """A request whose ``json()`` is :func:`parse_json`, for FastAPI's model bodies too."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class JsonBodyRoute(APIRoute):
    """A route that parses JSON bodies with :func:`parse_json`: a bad one is a 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_json_safely(request: Request) -> Response:
            return await handle(JsonBodyRequest(request.scope, request.receive))

        return handle_json_safely
