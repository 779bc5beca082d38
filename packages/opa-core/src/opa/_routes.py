"""Plugin routers become the app's own routes, so a request matches one flat route list.

Since FastAPI 0.137, ``include_router`` keeps the included router as a layer that every
request descends through (it is matched, then matched again to pick the route); before,
the routes were copied into the app. The layer cost about 13 us per request here
(``benchmarks/bench_routing.py``). opa puts a plugin router's routes into the app's own
list instead: a route without dependencies as it is, and one with dependencies declared
again on the app (as ``include_router`` did before 0.137), so that the app's
``dependency_overrides`` reach it. Declaring a route again costs start-up time, so it is
done only where it matters. A router holding anything else (nested routers, mounts,
Starlette routes, or start-up code of its own) is included the ordinary way.
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
    routes = _plain_routes(router)
    if routes is None:
        app.include_router(router)
        return
    for route in routes:
        if not route.dependant.dependencies:
            # Nothing in it for app.dependency_overrides to replace: the route serves as is.
            app.router.routes.append(route)
        elif isinstance(route, APIRoute):
            # Declared again on the app, so that its dependency overrides reach the route.
            options = {name: getattr(route, name) for name in _route_options()}
            app.router.add_api_route(
                route.path, route.endpoint, route_class_override=type(route), **options
            )
        else:
            app.router.add_api_websocket_route(
                route.path, route.endpoint, name=route.name, dependencies=route.dependencies
            )


def _plain_routes(router: APIRouter) -> list[APIRoute | APIWebSocketRoute] | None:
    """The router's routes if taking them loses nothing (only FastAPI routes, no start-up
    code of the router's own); None otherwise."""
    routes = [r for r in router.routes if isinstance(r, APIRoute | APIWebSocketRoute)]
    own_lifespan = type(router.lifespan_context) is not type(APIRouter().lifespan_context)
    if len(routes) < len(router.routes) or own_lifespan or router.on_startup or router.on_shutdown:
        return None
    return routes


@cache
def _route_options() -> tuple[str, ...]:
    """The ``add_api_route`` parameters a route keeps as attributes of the same name.

    Read from the installed FastAPI, so options added by later releases (body size and
    form limits, strict content types) are copied too.
    """
    parameters = inspect.signature(APIRouter.add_api_route).parameters
    probe = APIRoute("/", endpoint=lambda: None)
    return tuple(name for name in parameters if name not in _NOT_COPIED and hasattr(probe, name))
