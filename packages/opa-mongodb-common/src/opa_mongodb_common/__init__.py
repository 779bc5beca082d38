"""What opa's MongoDB drivers share: their options, the URL check, and the driver base.

``opa-driver-mongodb-motor`` and ``opa-driver-mongodb-pymongo`` build on it, so that both
accept the same ``OPTS`` and behave the same. Importing it imports no MongoDB library.
``opa_mongodb_common.testing`` holds the tests both drivers run (it needs pytest).
"""

from opa_mongodb_common.driver import AsyncMongoDriver, srv_targets
from opa_mongodb_common.options import (
    DEFAULT_DATABASE,
    MongoOptions,
    MongoUrl,
    check_database_name,
    parse_url,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_DATABASE",
    "AsyncMongoDriver",
    "MongoOptions",
    "MongoUrl",
    "check_database_name",
    "parse_url",
    "srv_targets",
]
