"""Plugin routers become the app's own routes, so a request matches one flat route list.

Since FastAPI 0.137, ``include_router`` keeps the included router as a layer that every
request descends through (it is matched, then matched again to pick the route); before,
the routes were copied into the app. The layer cost about 20 us per request here (see
docs/benchmarks.md), a tenth of a Redis counter request. opa copies each route of a plugin
router into the app as ``@app.get`` would declare it, which is what ``include_router``
did before 0.137. A router holding anything else (nested routers, mounts, Starlette
routes, or start-up code of its own) is included the ordinary way.
"""

from __future__ import annotations

import inspect
from functools import cache

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute

# Passed separately, or set by the app's router itself.
_NOT_COPIED = frozenset({"self", "path", "endpoint", "route_class_override"})


def add_router(app: FastAPI, router: APIRouter) -> None:
    """Serve *router*'s routes from *app*, after the routes it already has."""
    if not _copyable(router):
        app.include_router(router)
        return
    for route in router.routes:
        if isinstance(route, APIRoute):
            options = {name: getattr(route, name) for name in _route_options()}
            app.router.add_api_route(
                route.path, route.endpoint, route_class_override=type(route), **options
            )
        elif isinstance(route, APIWebSocketRoute):
            app.router.add_api_websocket_route(
                route.path, route.endpoint, name=route.name, dependencies=route.dependencies
            )


def _copyable(router: APIRouter) -> bool:
    """Whether copying the routes loses nothing: only FastAPI routes, no start-up code."""
    plain_routes = all(isinstance(r, APIRoute | APIWebSocketRoute) for r in router.routes)
    own_lifespan = type(router.lifespan_context) is not type(APIRouter().lifespan_context)
    return plain_routes and not own_lifespan and not router.on_startup and not router.on_shutdown


@cache
def _route_options() -> tuple[str, ...]:
    """The ``add_api_route`` parameters a route keeps as attributes of the same name.

    Read from the installed FastAPI, so options added by later releases (body size and
    form limits, strict content types) are copied too.
    """
    parameters = inspect.signature(APIRouter.add_api_route).parameters
    probe = APIRoute("/", endpoint=lambda: None)
    return tuple(name for name in parameters if name not in _NOT_COPIED and hasattr(probe, name))
