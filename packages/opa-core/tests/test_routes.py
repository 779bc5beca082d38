"""Plugin routes are the app's own: the same API as include_router, without its layer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response, WebSocket
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel

from opa._routes import add_router
from support import make_app, write_plugin


def token(x_token: Annotated[str, Header()] = "none") -> str:
    return x_token


class Item(BaseModel):
    name: str
    secret: str = "hidden"


class PublicItem(BaseModel):
    name: str


class TimedRoute(APIRoute):
    """A custom route class, as plugins use for per-route behaviour."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def timed(request: Request) -> Response:
            response = await handler(request)
            response.headers["x-timed"] = "yes"
            return response

        return timed


def rich_router() -> APIRouter:
    """A router using most of what a route can carry."""
    router = APIRouter(
        prefix="/shop",
        tags=["shop"],
        dependencies=[Depends(token)],
        responses={418: {"description": "a teapot"}},
        route_class=TimedRoute,
    )

    @router.get("/count", status_code=201, summary="Count", deprecated=True, operation_id="count")
    def count(start: int = 1, seen: str = Depends(token)) -> dict[str, object]:
        return {"start": start, "token": seen}

    @router.post("/items", response_model=PublicItem, openapi_extra={"x-kind": "item"})
    async def create(item: Item) -> Item:
        return item

    @router.get("/hidden", include_in_schema=False)
    def hidden() -> str:
        return "hidden"

    @router.websocket("/feed")
    async def feed(socket: WebSocket) -> None:
        await socket.accept()
        await socket.send_text("hello")
        await socket.close()

    return router


def both_ways(router: APIRouter) -> tuple[FastAPI, FastAPI]:
    """The router included by FastAPI, and added by opa."""
    included, added = FastAPI(), FastAPI()
    included.include_router(router)
    add_router(added, router)
    return included, added


def test_the_api_is_the_one_include_router_gives() -> None:
    included, added = both_ways(rich_router())
    assert added.openapi() == included.openapi()


@pytest.mark.parametrize("way", ["included", "added"])
def test_requests_behave_as_with_include_router(way: str) -> None:
    app = dict(zip(["included", "added"], both_ways(rich_router()), strict=True))[way]
    client = TestClient(app)

    counted = client.get("/shop/count?start=3", headers={"x-token": "t1"})
    assert (counted.status_code, counted.json()) == (201, {"start": 3, "token": "t1"})
    assert counted.headers["x-timed"] == "yes"
    created = client.post("/shop/items", json={"name": "pen", "secret": "s3"})
    assert created.json() == {"name": "pen"}  # the response model filters the secret
    assert client.get("/shop/hidden").json() == "hidden"
    assert client.get("/shop/count?start=x").status_code == 422
    with client.websocket_connect("/shop/feed") as socket:
        assert socket.receive_text() == "hello"

    app.dependency_overrides[token] = lambda: "overridden"
    assert client.get("/shop/count").json()["token"] == "overridden"


def test_routes_are_added_to_the_app_itself() -> None:
    """No included-router layer: the route objects sit in the app's own list."""
    app = FastAPI()
    add_router(app, rich_router())
    paths = {getattr(route, "path", None) for route in app.router.routes}
    assert {"/shop/count", "/shop/items", "/shop/hidden", "/shop/feed"} <= paths


def test_a_route_without_dependencies_is_taken_as_it_is() -> None:
    """No dependency for an override to replace: the route object itself serves, so a
    plugin's routes cost no second declaration at start-up."""
    router = APIRouter(prefix="/plain")

    @router.get("/ping")
    def ping() -> str:
        return "pong"

    app = FastAPI()
    add_router(app, router)
    assert router.routes[0] in app.router.routes
    assert TestClient(app).get("/plain/ping").json() == "pong"


def test_order_decides_between_routers_as_before() -> None:
    first, second = APIRouter(), APIRouter()

    @first.get("/same")
    def from_first() -> str:
        return "first"

    @second.get("/same")
    def from_second() -> str:
        return "second"

    app = FastAPI()
    add_router(app, first)
    add_router(app, second)
    assert TestClient(app).get("/same").json() == "first"


def test_a_router_with_nested_routers_is_included() -> None:
    inner, outer = APIRouter(prefix="/inner"), APIRouter(prefix="/outer")

    @inner.get("/ping")
    def ping() -> str:
        return "pong"

    outer.include_router(inner)
    app = FastAPI()
    add_router(app, outer)
    assert TestClient(app).get("/outer/inner/ping").json() == "pong"


def test_a_router_with_a_lifespan_keeps_it() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("start")
        yield
        events.append("stop")

    router = APIRouter(lifespan=lifespan)

    @router.get("/up")
    def up() -> bool:
        return True

    app = FastAPI()
    add_router(app, router)
    with TestClient(app) as client:
        assert client.get("/up").json() is True
    assert events == ["start", "stop"]


def test_a_plugin_route_is_served_from_the_app_route_list(tmp_path: Path) -> None:
    write_plugin(
        tmp_path,
        "shop",
        """
        from opa import get_router

        router = get_router(prefix="/shop", tags=["shop"])

        @router.get("/open")
        def is_open() -> bool:
            return True
        """,
    )
    app = make_app(PLUGIN_PATHS=[str(tmp_path)])
    served = [r for r in app.router.routes if getattr(r, "path", None) == "/shop/open"]
    assert len(served) == 1 and isinstance(served[0], APIRoute)
    assert served[0].tags == ["shop"]
    with TestClient(app) as client:
        assert client.get("/shop/open").json() is True
        assert client.get("/health").status_code == 200
