"""What opa's two Redis drivers share: the ``OPTS`` model and the pool arguments built from it."""

from opa_redis_common.options import REDIS_PORTS, RedisOptions, pool_kwargs

__version__ = "0.1.0"

__all__ = ["REDIS_PORTS", "RedisOptions", "pool_kwargs"]
