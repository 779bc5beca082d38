"""mongodb-async-motor against a real server: opa's compliance suite and the MongoDB suite."""

from __future__ import annotations

from opa_mongodb_common.testing import MongoDriverSuite


class TestMotorDriver(MongoDriverSuite):
    """The Motor driver, loaded through its entry point."""

    driver_name = "mongodb-async-motor"
    distribution = "opa-driver-mongodb-motor"
    client_class = "motor.motor_asyncio:AsyncIOMotorClient"
