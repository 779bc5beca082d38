"""Deprecated: opa-stack's redis driver module, now a lazy alias."""

from typing import Any

from opa.plugins import Target, resolve_alias

_TARGETS: dict[str, Target] = {
    "Walrus": ("opa_driver_redis_walrus", "WalrusDriver", "opa-driver-redis-walrus"),
    "Aioredis": ("opa_driver_redis_aioredis", "AioredisDriver", "opa-driver-redis-aioredis"),
}


def __getattr__(name: str) -> Any:
    return resolve_alias(__name__, name, _TARGETS)
