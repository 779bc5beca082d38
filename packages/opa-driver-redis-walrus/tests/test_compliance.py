"""redis-walrus passes opa's driver compliance suite against a real Redis."""

from __future__ import annotations

from opa_redis_common.testing import RedisDriverSuite


class TestWalrusCompliance(RedisDriverSuite):
    """The shared Redis cases, through the installed opa.drivers entry point."""

    driver_name = "redis-walrus"
    distribution = "opa-driver-redis-walrus"
