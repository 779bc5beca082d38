"""redis-aioredis passes opa's driver compliance suite against a real Redis."""

from __future__ import annotations

from opa_redis_common.testing import RedisDriverSuite


class TestAioredisCompliance(RedisDriverSuite):
    """The shared Redis cases, through the installed opa.drivers entry point."""

    driver_name = "redis-aioredis"
    distribution = "opa-driver-redis-aioredis"
