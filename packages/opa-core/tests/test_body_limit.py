"""MAX_REQUEST_BODY and limit_body: oversized request bodies are refused with 413."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.types import Message, Receive, Scope, Send

from opa import ConfigError, get_router, limit_body
from opa._body_limit import BodyLimitMiddleware
from opa._config import typed
from opa.testing import build_app

LIMIT = 100


class Item(BaseModel):
    name: str


def limited_app(limit: Any = LIMIT, **settings: Any) -> tuple[FastAPI, list[int]]:
    """An app with routes that read the body; the list gets each body length a route saw."""
    app = build_app({"MAX_REQUEST_BODY": limit, **settings})
    seen: list[int] = []

    @app.post("/read")
    async def read(request: Request) -> dict[str, int]:
        body = await request.body()
        seen.append(len(body))
        return {"length": len(body)}

    @app.post("/stream")
    async def stream(request: Request) -> dict[str, int]:
        total = 0
        try:
            async for chunk in request.stream():
                total += len(chunk)
        finally:
            seen.append(total)
        return {"length": total}

    @app.post("/item")
    def item(payload: Item) -> dict[str, str]:
        seen.append(len(payload.name))
        return {"name": payload.name}

    return app, seen


async def chunks(count: int, size: int) -> AsyncIterator[bytes]:
    """A body of unknown length: httpx sends it with Transfer-Encoding: chunked."""
    for _ in range(count):
        yield b"x" * size


def post(app: FastAPI, path: str, **kwargs: Any) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://opa.test") as client:
            return await client.post(path, **kwargs)

    return asyncio.run(run())


# --- the setting ------------------------------------------------------------------------


def test_the_default_limit_is_one_mebibyte() -> None:
    """Without MAX_REQUEST_BODY in the settings, 1 MiB passes and one byte more is a 413."""
    app = build_app()
    app.post("/read")(lambda: None)
    assert app.state.opa.settings.MAX_REQUEST_BODY == 1048576
    assert post(app, "/read", content=b"x" * (1048576 + 1)).status_code == 413
    assert post(app, "/read", content=b"x" * 1048576).status_code == 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2048, 2048), ("4096", 4096), (" 10 ", 10), (0, None), (None, None), ("0", None)],
)
def test_valid_limits_are_read(value: Any, expected: int | None) -> None:
    """Whole numbers (also as digit strings, as from a variable) are bytes; 0 and null: none."""
    assert typed(build_app({"MAX_REQUEST_BODY": value}).state.opa.settings).body_limit == expected


@pytest.mark.parametrize(
    "value",
    [-1, 1.5, 1048576.0, "lots", "", "-5", "1e6", "١٢", True, [], {"a": 1}, "x" * 500],
    ids=[
        "negative",
        "fraction",
        "float",
        "word",
        "empty",
        "negative-string",
        "exponent",
        "arabic-digits",
        "bool",
        "list",
        "mapping",
        "long-string",
    ],
)
def test_invalid_limits_stop_the_app_naming_the_setting(value: Any) -> None:
    """A negative, fractional, non-numeric or boolean MAX_REQUEST_BODY is a ConfigError."""
    with pytest.raises(ConfigError, match="MAX_REQUEST_BODY") as error:
        build_app({"MAX_REQUEST_BODY": value})
    assert len(str(error.value)) < 200, "the message must stay one short line"


@pytest.mark.parametrize("value", [0, None])
def test_zero_or_null_turns_the_limit_off(value: Any) -> None:
    """With 0 or null there is no middleware and a large body reaches the route."""
    app, seen = limited_app(value)
    assert not [m for m in app.user_middleware if m.cls is BodyLimitMiddleware]
    assert post(app, "/read", content=b"x" * 2_000_000).status_code == 200
    assert seen == [2_000_000]


# --- declared lengths -------------------------------------------------------------------


def test_a_declared_length_over_the_limit_is_refused_before_the_route_runs() -> None:
    """Content-Length over the limit: 413 naming the limit, the route never called."""
    app, seen = limited_app()
    response = post(app, "/read", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.json() == {"detail": f"request body too large: the limit is {LIMIT} bytes"}
    assert response.headers["connection"] == "close"
    assert seen == []


def test_a_body_at_the_limit_reaches_the_route_whole() -> None:
    """A body of exactly MAX_REQUEST_BODY bytes is accepted and read in full."""
    app, seen = limited_app()
    assert post(app, "/read", content=b"x" * LIMIT).json() == {"length": LIMIT}
    assert seen == [LIMIT]


def test_a_model_body_over_the_limit_is_413_not_422() -> None:
    """A JSON body for a pydantic model that is too large is refused before it is parsed."""
    app, seen = limited_app()
    response = post(app, "/item", json={"name": "n" * LIMIT})
    assert response.status_code == 413
    assert seen == []


def test_the_refusal_carries_cors_headers() -> None:
    """With CORS configured, a browser can read the 413 (CORS wraps the limit)."""
    origin = "https://app.example"
    app, _ = limited_app(CORS_ORIGINS=[origin])
    response = post(app, "/read", content=b"x" * (LIMIT + 1), headers={"origin": origin})
    assert response.status_code == 413
    assert response.headers["access-control-allow-origin"] == origin


# --- bodies of unknown length -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/read", "/stream"])
def test_a_chunked_body_over_the_limit_is_cut_off(path: str) -> None:
    """A chunked body is counted as it arrives: 413, and the route saw at most the limit."""
    app, seen = limited_app()
    response = post(app, path, content=chunks(10, 30))
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    assert all(length <= LIMIT for length in seen), seen


def test_a_chunked_model_body_over_the_limit_is_413() -> None:
    """FastAPI's model parsing passes the 413 on rather than calling it a bad body (400)."""
    app, seen = limited_app()
    headers = {"content-type": "application/json"}
    assert post(app, "/item", content=chunks(10, 30), headers=headers).status_code == 413
    assert seen == []


def test_a_chunked_body_within_the_limit_is_read_whole() -> None:
    """Chunks adding up to the limit reach the route in full."""
    app, seen = limited_app()
    assert post(app, "/stream", content=chunks(4, 25)).json() == {"length": LIMIT}
    assert seen == [LIMIT]


# --- the fast path ----------------------------------------------------------------------


def test_a_request_without_a_body_passes_through_untouched() -> None:
    """A GET with no Content-Length or Transfer-Encoding gets the server's own receive."""
    received: list[Receive] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(receive)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        raise AssertionError("the middleware itself must not answer")

    scope = {"type": "http", "http_version": "1.1", "method": "GET", "headers": [(b"a", b"b")]}
    asyncio.run(BodyLimitMiddleware(inner, LIMIT)(scope, receive, send))
    assert received == [receive]


def test_lifespan_and_get_requests_work_under_the_limit() -> None:
    """The app starts (lifespan passes through) and GET /health answers as before."""
    from fastapi.testclient import TestClient

    with TestClient(build_app({"MAX_REQUEST_BODY": 1})) as client:
        assert client.get("/health").status_code == 200


# --- over a real connection -------------------------------------------------------------


@contextmanager
def served(app: FastAPI) -> Iterator[int]:
    """*app* on a uvicorn of its own in a thread, on a port the kernel picks; yields it."""
    # No log settings: uvicorn would reconfigure the standard loggers other tests read.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(10)


def exchange(port: int, head: bytes, body: bytes = b"") -> bytes:
    """Send a raw request; everything the server answers until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_over_http_a_huge_declared_body_is_refused_without_reading_it() -> None:
    """uvicorn: 100 MB declared, no byte sent; the 413 comes at once and the server closes."""
    app, seen = limited_app(1024)
    with served(app) as port:
        head = b"POST /read HTTP/1.1\r\nhost: x\r\ncontent-length: 104857600\r\n\r\n"
        started = time.perf_counter()
        answer = exchange(port, head)
        elapsed = time.perf_counter() - started
    print(f"413 for a 100 MB Content-Length after {elapsed * 1000:.1f} ms")
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"the limit is 1024 bytes" in answer
    assert elapsed < 2.0
    assert seen == []


def test_over_http_a_chunked_body_is_cut_off_at_the_limit() -> None:
    """uvicorn: a chunked body past the limit is a 413, and the route saw at most the limit."""
    app, seen = limited_app(1024)
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    with served(app) as port:
        head = b"POST /stream HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        answer = exchange(port, head, chunk * 4 + b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert seen and all(length <= 1024 for length in seen), seen


# --- limit_body for one router ----------------------------------------------------------


def router_app() -> tuple[FastAPI, list[int]]:
    router = get_router(route_class=limit_body(16))
    seen: list[int] = []

    @router.post("/small")
    async def small(request: Request) -> dict[str, int]:
        body = await request.body()
        seen.append(len(body))
        return {"length": len(body)}

    @router.post("/small-item")
    def small_item(payload: Item) -> dict[str, str]:
        return {"name": payload.name}

    app = build_app()
    app.include_router(router)
    return app, seen


@pytest.mark.parametrize("content", [b"x" * 17, chunks(3, 6)], ids=["declared", "chunked"])
def test_limit_body_caps_one_routers_routes(content: Any) -> None:
    """A router with limit_body(16) answers 413 past 16 bytes, whatever the framing."""
    app, seen = router_app()
    response = post(app, "/small", content=content)
    assert response.status_code == 413
    assert response.json()["detail"] == "request body too large: the limit is 16 bytes"
    assert all(length <= 16 for length in seen)


def test_limit_body_lets_a_small_body_through() -> None:
    """Sixteen bytes pass, as does a small model body; a larger model body does not."""
    app, seen = router_app()
    assert post(app, "/small", content=b"x" * 16).json() == {"length": 16}
    assert seen == [16]
    assert post(app, "/small-item", json={"name": "a"}).status_code == 200
    assert post(app, "/small-item", json={"name": "a" * 20}).status_code == 413


@pytest.mark.parametrize("value", [0, -1, 1.5, "10", True, None])
def test_limit_body_refuses_a_bad_size(value: Any) -> None:
    """limit_body needs a positive integer; the error names max_bytes and the value."""
    with pytest.raises(ValueError, match=r"limit_body: max_bytes must be a positive integer"):
        limit_body(value)
