"""Deprecated: opa-stack's celery driver module, now a lazy alias."""

from typing import Any

from opa.plugins import Target, resolve_alias

_TARGETS: dict[str, Target] = {
    "Celery": ("opa_driver_celery", "CeleryDriver", "opa-driver-celery"),
}


def __getattr__(name: str) -> Any:
    return resolve_alias(__name__, name, _TARGETS)
