"""Request body limits: app-wide (``MAX_REQUEST_BODY``) and per route (``limit_body``).

A declared ``Content-Length`` over the limit is answered with 413 before the route runs.
A body of unknown length (chunked) is counted as it arrives, and reading past the limit
raises a 413 ``HTTPException``, so a route never receives more than the limit. Requests
without a body pass straight through: the check must cost next to nothing on a GET.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opa._json_body import JsonBodyRequest

# HTTP/1.x frames a body only with one of these; without them there is nothing to count.
_BODY_HEADERS = (b"content-length", b"transfer-encoding")
_CLOSE = (b"connection", b"close")


class BodyTooLarge(HTTPException):
    """A request body passed its limit; FastAPI and Starlette answer it with 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large: the limit is {limit} bytes")


def _declared_length(scope: Scope) -> tuple[bool, int | None]:
    """Whether the request may carry a body, and its Content-Length when that is valid."""
    has_body = scope.get("http_version") == "2"  # HTTP/2 may stream without either header
    length = None
    for name, value in scope["headers"]:
        if name in _BODY_HEADERS:
            has_body = True
            if name == b"content-length" and value.isdigit():
                length = int(value)
    return has_body, length


def counting_receive(
    receive: Receive, limit: int, on_overflow: Callable[[], None] | None = None
) -> Receive:
    """*receive*, raising :class:`BodyTooLarge` once the body read so far passes *limit*."""
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                if on_overflow is not None:
                    on_overflow()
                raise BodyTooLarge(limit)
        return message

    return receive_within_limit


class BodyLimitMiddleware:
    """Pure ASGI middleware enforcing one limit on every request body of the app."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        has_body, length = _declared_length(scope)
        if not has_body:
            await self.app(scope, receive, send)
            return
        if length is not None and length > self.limit:
            await self._refuse(scope, receive, send)
            return
        overflowed: list[bool] = []

        async def send_closing(message: Message) -> None:
            # The unread rest of an oversized body is not worth keeping the connection for.
            if overflowed and message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
            await send(message)

        limited = counting_receive(receive, self.limit, lambda: overflowed.append(True))
        try:
            await self.app(scope, limited, send_closing)
        except BodyTooLarge:
            # Reached only when no exception handler answered it before the response began.
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = BodyTooLarge(self.limit).detail
        response = JSONResponse({"detail": detail}, 413, headers={"connection": "close"})
        await response(scope, receive, send)


def limit_body(max_bytes: int) -> type[APIRoute]:
    """A route class whose routes read at most *max_bytes* of body, else answer 413.

    Give it to a router (``get_router(route_class=limit_body(64 * 1024))``): the limit
    holds while FastAPI parses a model and for ``await request.body()`` or
    ``request.stream()`` in the route, so nothing past it is ever buffered. JSON bodies are
    parsed as on every :func:`opa.get_router` route (see :mod:`opa._json_body`).
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"limit_body: max_bytes must be a positive integer, got {max_bytes!r}")

    class LimitedBodyRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handle = super().get_route_handler()

            async def handle_within_limit(request: Request) -> Response:
                length = _declared_length(request.scope)[1]
                if length is not None and length > max_bytes:
                    raise BodyTooLarge(max_bytes)
                receive = counting_receive(request.receive, max_bytes)
                limited = JsonBodyRequest(request.scope, receive)
                return await handle(limited)

            return handle_within_limit

    LimitedBodyRoute.__name__ = LimitedBodyRoute.__qualname__ = f"LimitedBodyRoute{max_bytes}"
    return LimitedBodyRoute
