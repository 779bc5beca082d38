"""What FastAPI's include_router layer costs a request, against opa's copied routes.

Two apps serve the same plugin-style router: one through ``app.include_router`` (since
FastAPI 0.137 a layer each request matches twice), one through ``opa._routes.add_router``
(the routes copied into the app). Requests are driven in-process through ASGI, so only
routing and the endpoint are measured; the figure is CPU time per request, the minimum
over alternating rounds.

    python benchmarks/bench_routing.py [--rounds 15] [--requests 3000] [--routers 3]

``--routers`` plugin routers are included before the one measured, as an app with
several plugins has them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable

import fastapi
from fastapi import APIRouter, FastAPI
from starlette.types import Message

from opa._routes import add_router

PATH = "/counter"


def plugin_router(number: int) -> APIRouter:
    router = APIRouter(prefix=f"/plugin{number}", tags=[f"plugin {number}"])

    @router.get("/items")
    async def items() -> list[int]:
        return [number]

    return router


def measured_router() -> APIRouter:
    router = APIRouter(tags=["counter"])

    @router.get(PATH)
    async def counter(key: str = "default") -> int:
        return len(key)

    return router


def build(add: Callable[[FastAPI, APIRouter], None], others: int) -> FastAPI:
    app = FastAPI()
    for number in range(others):
        add(app, plugin_router(number))
    add(app, measured_router())
    return app


async def request(app: FastAPI) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"key=abc",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "server": ("bench", 80),
        "client": ("client", 1),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 200, sent


async def measure(rounds: int, requests: int, others: int) -> dict[str, float]:
    apps = {
        "include_router": build(lambda app, router: app.include_router(router), others),
        "opa add_router": build(add_router, others),
    }
    best = dict.fromkeys(apps, float("inf"))
    for number in range(rounds):
        order = list(apps.items())
        for name, app in order[number % 2 :] + order[: number % 2]:
            started = time.process_time()
            for _ in range(requests):
                await request(app)
            best[name] = min(best[name], (time.process_time() - started) / requests * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--routers", type=int, default=3)
    args = parser.parse_args(argv)
    best = asyncio.run(measure(args.rounds, args.requests, args.routers))
    print(f"FastAPI {fastapi.__version__}, {args.routers} routers before the measured one")
    print("| routes | CPU µs per request |\n| --- | ---: |")
    for name, micros in best.items():
        print(f"| {name} | {micros:.1f} |")
    print(f"\ncopying saves {best['include_router'] - best['opa add_router']:.1f} µs a request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
