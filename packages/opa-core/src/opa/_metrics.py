"""Prometheus metrics (setting ``METRICS``): HTTP requests, components, start-up.

Imported only when the setting is on, so an app without metrics neither imports
prometheus-client nor pays for a middleware. Component metrics come from the lifecycle
events of :mod:`opa.hookspecs`, heard by an internal extension, so every driver has them
without code of its own.

The metrics live on prometheus-client's default registry, which is also what its
multiprocess mode reads from; gauges declare how processes add up (``multiprocess_mode``),
and component states are set by the events themselves, so every process keeps its own
right whichever process a scrape reaches. ``METRICS_PORT`` serves them on a port of their
own instead of a route (:mod:`opa._metrics_port`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opa._components import Component, Status
from opa._extensions import extensions
from opa._metrics_folder import checked_folder, this_process_ends
from opa._metrics_port import allowed, networks, own_port, page, require_client
from opa._plugin_manager import PluginManager
from opa._settings_model import Settings
from opa.hookspecs import hookimpl

try:
    import prometheus_client as prom
except ImportError:  # pragma: no cover - the message is tested with the module hidden
    prom = None  # type: ignore[assignment]

UNMATCHED = "<unmatched>"
"""The route label of every request no route matched, so stray paths add no series."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_EXTENSION_NAME = "opa.metrics"


class _Metrics:
    """Every metric opa exports, created once per process on the default registry."""

    def __init__(self) -> None:
        self.requests = prom.Counter(
            "opa_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
        )
        self.latency = prom.Histogram(
            "opa_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by method and route.",
            ["method", "route"],
        )
        self.in_flight = prom.Gauge(
            "opa_http_requests_in_flight",
            "Requests being answered now.",
            ["method"],
            multiprocess_mode="livesum",
        )
        self.state = prom.Gauge(
            "opa_component_state",
            "1 for the state each component is in, 0 for the others.",
            ["component", "driver", "state"],
            multiprocess_mode="liveall",
        )
        self.connect = prom.Histogram(
            "opa_component_connect_duration_seconds",
            "Time a component took to connect and pass its driver's validation.",
            ["component", "driver"],
        )
        self.ping = prom.Histogram(
            "opa_component_ping_duration_seconds",
            "Time a component's ping took (/health, or the breaker waiting for it), by outcome.",
            ["component", "driver", "outcome"],
        )
        self.failures = prom.Counter(
            "opa_component_connect_failures",
            "Components that did not connect at start-up.",
            ["component", "driver"],
        )
        self.outage_errors = prom.Counter(
            "opa_component_outage_errors",
            "Requests that failed with an outage error of the component's backend (503).",
            ["component", "driver"],
        )
        self.trips = prom.Counter(
            "opa_component_breaker_trips",
            "Times the breaker marked a component down.",
            ["component", "driver"],
        )
        self.recoveries = prom.Counter(
            "opa_component_breaker_recoveries",
            "Times a down component answered its ping again and was served again.",
            ["component", "driver"],
        )
        self.downtime = prom.Histogram(
            "opa_component_down_duration_seconds",
            "How long a component was down before it recovered.",
            ["component", "driver"],
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
        )
        self.plugins = prom.Gauge(
            "opa_plugins_loaded",
            "Plugins the app loaded.",
            multiprocess_mode="livemax",
        )
        self.startup = prom.Gauge(
            "opa_startup_duration_seconds",
            "Time the app's start-up took: components connected and plugin setups run.",
            multiprocess_mode="livemax",
        )


_metrics: _Metrics | None = None


def _get_metrics() -> _Metrics:
    global _metrics
    if _metrics is None:
        _metrics = _Metrics()
    return _metrics


def _labels(component: Component) -> tuple[str, str]:
    return component.name, component.spec.driver


class _ComponentEvents:
    """The internal extension that turns component lifecycle events into metrics."""

    def __init__(self, metrics: _Metrics) -> None:
        self.metrics = metrics

    @hookimpl
    def opa_component_connected(self, component: Component, elapsed: float) -> None:
        self.metrics.connect.labels(*_labels(component)).observe(elapsed)
        _set_state(self.metrics, component, Status.OK)

    @hookimpl
    def opa_component_pinged(
        self, component: Component, elapsed: float, problem: str | None
    ) -> None:
        outcome = "ok" if problem is None else "failed"
        self.metrics.ping.labels(*_labels(component), outcome).observe(elapsed)

    @hookimpl
    def opa_component_failed(self, component: Component) -> None:
        self.metrics.failures.labels(*_labels(component)).inc()
        _set_state(self.metrics, component, Status.FAILED)

    @hookimpl
    def opa_component_outage(self, component: Component) -> None:
        self.metrics.outage_errors.labels(*_labels(component)).inc()

    @hookimpl
    def opa_component_down(self, component: Component) -> None:
        self.metrics.trips.labels(*_labels(component)).inc()
        _set_state(self.metrics, component, Status.DOWN)

    @hookimpl
    def opa_component_recovered(self, component: Component, elapsed: float) -> None:
        self.metrics.recoveries.labels(*_labels(component)).inc()
        self.metrics.downtime.labels(*_labels(component)).observe(elapsed)
        _set_state(self.metrics, component, Status.OK)

    @hookimpl
    def opa_component_disconnected(self, component: Component) -> None:
        _set_state(self.metrics, component, Status.STOPPED)


def _set_state(metrics: _Metrics, component: Component, state: Status) -> None:
    """1 for *state*, 0 for the others: set when the state changes, in the process where it
    changed, so a scrape of any process (or of all of them) reads it right."""
    name, driver = _labels(component)
    for status in Status:
        metrics.state.labels(name, driver, status.value).set(1 if status is state else 0)


def _metrics_endpoint(settings: Settings) -> Callable[[Request], Any]:
    allow = networks(settings)

    async def endpoint(request: Request) -> Response:
        # The peer's address, never a forwarded header a client could write.
        client = request.client.host if request.client else None
        if not allowed(client, allow):
            return Response("metrics are not readable from this address\n", status_code=403)
        return Response(page(), media_type=prom.CONTENT_TYPE_LATEST)

    return endpoint


class MetricsMiddleware:
    """Counts and times each HTTP request under its route template (pure ASGI, no body copy)."""

    def __init__(self, app: ASGIApp, metrics: _Metrics, routes: list[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self._templates: dict[int, str] = {}
        # Label lookups take a lock each; the children are kept here after the first request.
        self._in_flight: dict[str, Any] = {}
        self._answered: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _template(self, scope: Scope) -> str:
        """The matched route's template: FastAPI's routes name themselves in the scope;
        Starlette's (a mount of static files, say) are found by the endpoint they matched."""
        route = scope.get("route")
        if route is not None:
            return str(route.path)
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED
        template = self._templates.get(id(endpoint))
        if template is None:  # a route added since the last look: read them again
            self._templates = {
                id(getattr(each, "endpoint", None) or getattr(each, "app", None)): each.path
                for each in self.routes
                if isinstance(each, Route | Mount)
            }
            template = self._templates.get(id(endpoint), UNMATCHED)
        return template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        status = 500  # what the client gets if the app raises before answering
        in_flight = self._in_flight.get(method)
        if in_flight is None:
            in_flight = self._in_flight[method] = self.metrics.in_flight.labels(method)

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_flight.inc()
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - start
            in_flight.dec()
            # The router wrote what it matched into this same scope.
            key = (method, self._template(scope), status)
            children = self._answered.get(key)
            if children is None:
                children = self._answered[key] = (
                    self.metrics.requests.labels(method, key[1], str(status)),
                    self.metrics.latency.labels(method, key[1]),
                )
            children[0].inc()
            children[1].observe(elapsed)


def _timed_startup(
    app: FastAPI, metrics: _Metrics, manager: PluginManager, settings: Settings
) -> Callable[[FastAPI], AbstractAsyncContextManager[Any]]:
    """The app's lifespan, timed; with ``METRICS_PORT`` the port is bound first, so a port
    in use stops start-up before any component connects."""
    lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def timed(app: FastAPI) -> AsyncIterator[Any]:
        server = own_port(settings)
        try:
            start = time.perf_counter()
            async with lifespan(app) as state:
                metrics.startup.set(time.perf_counter() - start)
                metrics.plugins.set(len(manager.plugins))
                # The states no event announced: skipped, disabled.
                for component in manager.components:
                    _set_state(metrics, component, component.status)
                yield state
        finally:
            if server is not None:
                server.close()
            this_process_ends()

    return timed


def install_metrics(app: FastAPI, manager: PluginManager, settings: Settings) -> None:
    """Serve ``METRICS_PATH`` (or ``METRICS_PORT``), count requests, and listen to
    component events."""
    require_client()
    checked_folder()
    metrics = _get_metrics()
    events = extensions()
    if not events.has_plugin(_EXTENSION_NAME):
        events.register(_ComponentEvents(metrics), name=_EXTENSION_NAME)
    if settings.METRICS_PORT is None:
        app.add_route(
            settings.METRICS_PATH,
            _metrics_endpoint(settings),
            methods=["GET"],
            include_in_schema=False,
        )
    app.router.lifespan_context = _timed_startup(app, metrics, manager, settings)
    # Added last, so it is the outermost middleware and sees every answer (413, CORS).
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=app.router.routes)
