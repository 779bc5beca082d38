"""``GET /health``: overall status and each component's, without URLs or secrets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from opa._plugin_manager import PluginManager

router = APIRouter()


def component_verdict(entry: dict[str, str]) -> str:
    """What one component's state makes of the overall status (docs/concepts.md has the table).

    Switched off on purpose (``disabled``) is ``ok``. Configured but absent (``skipped``:
    unreachable, or no such driver) is ``degraded``: the app serves without it. Not
    answering (``down``, ``unavailable``) is ``unavailable`` for a ``LOAD: yes`` component
    and ``degraded`` for an ``auto`` one. Any other state (``failed``) is ``unavailable``.
    """
    status = entry["status"]
    if status in ("ok", "disabled"):
        return "ok"
    if status == "skipped":
        return "degraded"
    if status in ("down", "unavailable") and entry["load"] != "yes":
        return "degraded"
    return "unavailable"


def overall_status(components: dict[str, dict[str, str]]) -> tuple[str, int]:
    """The worst of the components' verdicts, and its HTTP status: only ``unavailable`` is 503."""
    verdicts = {component_verdict(entry) for entry in components.values()}
    if "unavailable" in verdicts:
        return "unavailable", 503
    if "degraded" in verdicts:
        return "degraded", 200
    return "ok", 200


@router.get("/health", tags=["health"], summary="Overall and per-component health")
async def health(request: Request) -> JSONResponse:
    manager: PluginManager = request.app.state.opa
    components = await manager.components.health()
    status, code = overall_status(components)
    body: dict[str, Any] = {"status": status, "components": components}
    return JSONResponse(body, status_code=code)
