"""Deprecated: opa-stack's redis driver module; its names resolve through the driver registry."""

from typing import Any

from opa.plugins import resolve_legacy


def __getattr__(name: str) -> Any:
    return resolve_legacy(__name__, name)
