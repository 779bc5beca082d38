"""Deprecated: opa-stack's mongodb driver module, now a lazy alias."""

from typing import Any

from opa.plugins import Target, resolve_alias

_TARGETS: dict[str, Target] = {
    "Motor": ("opa_driver_mongodb_motor", "MotorDriver", "opa-driver-mongodb-motor"),
}


def __getattr__(name: str) -> Any:
    return resolve_alias(__name__, name, _TARGETS)
