"""opa's ``redis-aioredis`` driver package; the class lives in ``driver.py``."""

from opa_driver_redis_aioredis.driver import AioredisDriver

__version__ = "0.1.0"

__all__ = ["AioredisDriver"]
