"""What opa's two Redis drivers share: the ``OPTS`` model, the pool arguments built from it,
and their tracing."""

from opa_redis_common.options import REDIS_PORTS, RedisOptions, pool_kwargs
from opa_redis_common.tracing import instrument_redis

__version__ = "0.1.0"

__all__ = ["REDIS_PORTS", "RedisOptions", "instrument_redis", "pool_kwargs"]
