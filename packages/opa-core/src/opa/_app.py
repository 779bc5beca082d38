"""Builds the FastAPI app: settings, plugins, routers, and a lifespan that owns components."""

from __future__ import annotations

import gc
import os
import sys
import traceback
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

from opa import _runtime as runtime
from opa._api_docs import serve_api_docs
from opa._body_limit import BodyLimitMiddleware
from opa._bootstrap import bootstrap
from opa._breaker import breaker_settings
from opa._config import typed
from opa._errors import ComponentUnavailableError, OpaError, PluginError
from opa._extensions import extensions, notify
from opa._health import router as health_router
from opa._log import log
from opa._masking import mask_secrets
from opa._old_settings import refuse_worker_mode
from opa._plugin_manager import PluginManager, run_setup
from opa._routes import add_router
from opa._settings_model import Settings
from opa._validation_errors import request_validation_error


def _cors(app: FastAPI, settings: Settings) -> None:
    # The settings model refused '*' together with credentials already.
    if not settings.CORS_ORIGINS:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.CORS_ORIGINS,
        allow_credentials=settings.CORS_ALLOW_CREDENTIALS,
        allow_methods=settings.CORS_METHODS,
        allow_headers=settings.CORS_HEADERS,
    )


def _server_error_handler(debug: bool) -> Any:
    """500 responses; with DEBUG the traceback, with credentials masked like every log line."""

    async def server_error(request: Request, exc: Exception) -> PlainTextResponse:
        if not debug:
            return PlainTextResponse("Internal Server Error", status_code=500)
        text = "".join(traceback.format_exception(exc))
        return PlainTextResponse(mask_secrets(text), status_code=500)

    return server_error


async def _component_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503)


def _backend_outages(app: FastAPI, manager: PluginManager) -> None:
    """Answer the errors a driver says mean "server gone" with 503 naming the components.

    A handler is registered for each class of every driver's ``unavailable_errors()``; then
    each driver's ``is_unavailable()`` judges the error itself, because one class may carry
    an outage and a bad query alike. An error no driver owns goes on to the ordinary 500.
    With ``COMPONENT_BREAKER`` on, the owners are also reported to the breaker, which marks
    down the one the request used (see opa.breaker).
    """
    settings = breaker_settings(typed(manager.settings))
    if settings is not None:
        manager.components.enable_breaker(settings)
    configured = [component for component in manager.components if component.driver is not None]
    classes = [
        error
        for component in configured
        if component.driver is not None
        for error in component.driver.unavailable_errors()
    ]

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        # The drivers of the app's start-up, not of this build: start-up resolves them again.
        owners = [
            component
            for component in configured
            if component.driver is not None and component.driver.is_unavailable(exc)
        ]
        if not owners:
            raise exc  # not an outage: the server-error handler answers 500 and logs it
        names = " or ".join(repr(component.name) for component in owners)
        detail = f"backend unavailable for component {names}"
        log.warning("{}: {}", detail, f"{type(exc).__name__}: {exc}")
        for component in owners:
            notify("opa_component_outage", component=component, error=detail)
        breaker = manager.components.breaker
        if breaker is not None:
            breaker.outage_in_request(exc, owners)
        return JSONResponse({"detail": detail}, status_code=503)

    for error in dict.fromkeys(classes):
        app.add_exception_handler(error, handler)


def _report_startup_errors_in_one_line(app: FastAPI) -> None:
    """A start-up failed by an opa error is reported as its message alone.

    Starlette reports a failed lifespan with the whole traceback; for a component that
    cannot connect, the one line naming it is what an operator needs. Only the router's
    lifespan handler is wrapped, so requests pay nothing for it.
    """
    handle_lifespan = app.router.lifespan

    async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_one_line(message: Message) -> None:
            error = sys.exc_info()[1]
            if message["type"] == "lifespan.startup.failed" and isinstance(error, OpaError):
                message = {**message, "message": f"opa start-up failed: {error}"}
            await send(message)

        await handle_lifespan(scope, receive, send_one_line)

    app.router.lifespan = lifespan  # type: ignore[method-assign]


@contextmanager
def _startup_objects_frozen() -> Iterator[None]:
    """Keep what start-up built (modules, settings, plugins, clients) out of the cyclic
    garbage collector while serving.

    Those objects live as long as the app, yet every full collection walked all of them
    (docs/benchmarks.md has what that cost). Garbage from start-up is collected first, and
    shutdown hands everything back.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _lifespan(manager: PluginManager) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.activate(manager)
        await manager.components.start()
        try:
            for plugin in manager.plugins:
                for setup in plugin.setups:
                    try:
                        run_setup(setup, app)
                    except Exception as exc:
                        raise PluginError(
                            f"plugin {plugin.identity}: setup class {setup.__qualname__} failed: "
                            f"{type(exc).__name__}: {exc}"
                        ) from exc
            with _startup_objects_frozen():
                yield
        finally:
            await manager.components.stop()
            log.info("all components disconnected")

    return lifespan


def create_app(
    settings: Mapping[str, Any] | None = None,
    *,
    settings_dir: str | Path | None = None,
    env: str | None = None,
) -> FastAPI:
    """Build an opa app (through :func:`opa.bootstrap`); *settings* override configuration
    keys (handy in tests). Each extension's ``opa_app_setup`` adds its routes or middleware."""
    refuse_worker_mode(os.environ)
    return app_for(bootstrap(settings, settings_dir=settings_dir, env=env))


def app_for(manager: PluginManager) -> FastAPI:
    """The app serving what *manager* loaded: :func:`create_app` after its bootstrap, and
    the driver compliance suite, whose drivers may come from entry points of its own."""
    checked = typed(manager.settings)
    # SELF_HOSTED: opa serves the docs pages with their assets; otherwise FastAPI's use a CDN.
    self_hosted = checked.SELF_HOSTED
    docs_url = checked.DOCS_URL or None
    redoc_url = checked.REDOC_URL or None
    app = FastAPI(
        title=checked.PROJECT_NAME,
        description=checked.PROJECT_DESCRIPTION,
        version=checked.PROJECT_VERSION,
        docs_url=None if self_hosted else docs_url,
        redoc_url=None if self_hosted else redoc_url,
        openapi_url=checked.OPENAPI_URL or None,
        root_path=checked.OPENAPI_PREFIX,
        # Never Starlette's debug page: it shows exception text unmasked (see _server_error).
        debug=False,
        lifespan=_lifespan(manager),
    )
    app.state.opa = manager
    if checked.TRACING:
        # Imported here: without the setting, no opentelemetry and no middleware.
        from opa._tracing import trace_requests

        trace_requests(app)
    if checked.body_limit is not None:
        # Added before CORS, so CORS wraps it and a 413 still carries its headers.
        app.add_middleware(BodyLimitMiddleware, limit=checked.body_limit)
    _cors(app, checked)
    _report_startup_errors_in_one_line(app)
    app.add_exception_handler(ComponentUnavailableError, _component_unavailable)
    app.add_exception_handler(RequestValidationError, request_validation_error)
    app.add_exception_handler(Exception, _server_error_handler(checked.DEBUG))
    _backend_outages(app, manager)
    for router in manager.routers:
        add_router(app, router)
    extensions().hook.opa_app_setup(app=app, manager=manager)
    # Last: every route tried before a match costs each request a little.
    add_router(app, health_router)
    if self_hosted:
        serve_api_docs(app, docs_url=docs_url, redoc_url=redoc_url)
    if checked.METRICS:
        # Imported here: without the setting, no prometheus-client and no middleware.
        from opa._metrics import install_metrics

        install_metrics(app, manager, checked)
    return app
