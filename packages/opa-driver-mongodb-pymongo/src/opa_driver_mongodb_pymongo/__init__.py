"""opa driver ``mongodb-async-pymongo``: MongoDB through PyMongo's ``AsyncMongoClient``.

The successor of ``mongodb-async-motor``, with the same options. This module is what the
``opa.drivers`` entry point loads, so it imports no MongoDB library: PyMongo is imported
when the driver connects.
"""

from opa_driver_mongodb_pymongo.driver import PyMongoDriver

__version__ = "0.1.0"

__all__ = ["PyMongoDriver"]
