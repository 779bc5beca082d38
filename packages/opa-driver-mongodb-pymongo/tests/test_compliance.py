"""mongodb-async-pymongo against a real server: opa's compliance suite and the MongoDB suite."""

from __future__ import annotations

from opa_mongodb_common.testing import MongoDriverSuite


class TestPyMongoDriver(MongoDriverSuite):
    """The PyMongo driver, loaded through its entry point; it must not pull Motor in."""

    driver_name = "mongodb-async-pymongo"
    distribution = "opa-driver-mongodb-pymongo"
    client_class = "pymongo:AsyncMongoClient"
    also_absent = ("motor",)
