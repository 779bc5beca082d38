"""``GET /health``: overall status and each component's, without URLs or secrets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from opa.plugin_manager import PluginManager

router = APIRouter()


def overall_status(components: dict[str, dict[str, str]]) -> tuple[str, int]:
    """``unavailable`` (503) when a ``LOAD: yes`` component is down; ``degraded`` when
    an ``auto`` one is; else ``ok``."""
    down = {
        entry["load"]
        for entry in components.values()
        if entry["status"] not in ("ok", "skipped", "disabled")
        or (entry["load"] == "yes" and entry["status"] != "ok")
    }
    if "yes" in down:
        return "unavailable", 503
    if down:
        return "degraded", 200
    return "ok", 200


@router.get("/health", tags=["health"], summary="Overall and per-component health")
async def health(request: Request) -> JSONResponse:
    manager: PluginManager = request.app.state.opa
    components = await manager.components.health()
    status, code = overall_status(components)
    body: dict[str, Any] = {"status": status, "components": components}
    return JSONResponse(body, status_code=code)
