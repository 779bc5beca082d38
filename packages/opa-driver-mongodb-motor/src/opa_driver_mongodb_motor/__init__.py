"""opa driver ``mongodb-async-motor``: MongoDB through Motor's ``AsyncIOMotorClient``.

MongoDB deprecated Motor in May 2025; new projects should use ``mongodb-async-pymongo``
(``opa-driver-mongodb-pymongo``), which takes the same options. This module is what the
``opa.drivers`` entry point loads, so it imports no MongoDB library: Motor is imported
when the driver connects.
"""

from opa_driver_mongodb_motor.driver import MotorDriver

__version__ = "0.1.0"

__all__ = ["MotorDriver"]
