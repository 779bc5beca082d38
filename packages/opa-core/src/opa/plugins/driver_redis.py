"""Deprecated: opa-stack's redis driver module; its names resolve through the driver registry."""

from opa._drivers import Driver
from opa.plugins import resolve_legacy


def __getattr__(name: str) -> type[Driver]:
    return resolve_legacy(__name__, name)
