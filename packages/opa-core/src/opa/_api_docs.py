"""Self-hosted API docs: Swagger UI and ReDoc pages whose scripts and styles the app serves.

With ``SELF_HOSTED`` on, :func:`serve_api_docs` takes over the two docs pages from FastAPI
and points them at files served under :data:`STATIC_PATH`, so the docs work on a network
without access to a CDN.

The files come from the ``fastapi-offline`` distribution. It is chosen because one small,
maintained package ships both bundles (``swagger-ui-bundle.js`` and ``swagger-ui.css`` of
Swagger UI 5, ``redoc.standalone.js`` of ReDoc 2) plus a favicon, and depends on FastAPI
alone. Only its ``static`` folder is used: it is located with :func:`importlib.util.find_spec`,
which does not import the package, so opa's start-up pays for no extra module.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from opa._errors import ConfigError

__all__ = ["ASSETS_DISTRIBUTION", "STATIC_PATH", "assets_folder", "serve_api_docs"]

ASSETS_DISTRIBUTION = "fastapi-offline"
_ASSETS_PACKAGE = "fastapi_offline"
STATIC_PATH = "/_opa/static/api-docs"
"""Where the docs' scripts, styles and icon are mounted, below the app's root path."""

SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
REDOC_JS = "redoc.standalone.js"
FAVICON = "favicon.png"
_ASSETS = (SWAGGER_JS, SWAGGER_CSS, REDOC_JS, FAVICON)


def assets_folder() -> Path:
    """The folder holding the docs' asset files, found without importing their package."""
    spec = importlib.util.find_spec(_ASSETS_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "static"
        if all((folder / name).is_file() for name in _ASSETS):
            return folder
    raise ConfigError(
        f"SELF_HOSTED is on but the API docs' assets were not found: install "
        f"{ASSETS_DISTRIBUTION!r} (a dependency of opa-core) or set SELF_HOSTED to false"
    )


def _root_path(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def serve_api_docs(app: FastAPI, *, docs_url: str | None, redoc_url: str | None) -> None:
    """Add the Swagger UI and ReDoc pages (each unless its URL is empty) and their assets.

    *app* must have been built with ``docs_url=None`` and ``redoc_url=None`` so that
    FastAPI's CDN pages are not there too. Nothing is added without an OpenAPI URL, as
    FastAPI does, since neither page has anything to show then.
    """
    openapi_url = app.openapi_url
    if not openapi_url or not (docs_url or redoc_url):
        return
    app.mount(STATIC_PATH, StaticFiles(directory=assets_folder()), name="opa-api-docs-static")
    redirect_url = app.swagger_ui_oauth2_redirect_url

    if docs_url:

        async def swagger_ui(request: Request) -> HTMLResponse:
            root = _root_path(request)
            return get_swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{STATIC_PATH}/{SWAGGER_JS}",
                swagger_css_url=f"{root}{STATIC_PATH}/{SWAGGER_CSS}",
                swagger_favicon_url=f"{root}{STATIC_PATH}/{FAVICON}",
                oauth2_redirect_url=root + redirect_url if redirect_url else None,
                init_oauth=app.swagger_ui_init_oauth,
                swagger_ui_parameters=app.swagger_ui_parameters,
            )

        app.add_route(docs_url, swagger_ui, include_in_schema=False)

        if redirect_url:

            async def swagger_ui_redirect(request: Request) -> HTMLResponse:
                return get_swagger_ui_oauth2_redirect_html()

            app.add_route(redirect_url, swagger_ui_redirect, include_in_schema=False)

    if redoc_url:

        async def redoc(request: Request) -> HTMLResponse:
            root = _root_path(request)
            return get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{STATIC_PATH}/{REDOC_JS}",
                redoc_favicon_url=f"{root}{STATIC_PATH}/{FAVICON}",
                # The fonts would come from Google's servers; ReDoc falls back to local ones.
                with_google_fonts=False,
            )

        app.add_route(redoc_url, redoc, include_in_schema=False)
