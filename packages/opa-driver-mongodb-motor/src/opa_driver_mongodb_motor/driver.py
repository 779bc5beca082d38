"""The ``mongodb-async-motor`` driver: only building and closing Motor's client are its own."""

from __future__ import annotations

from typing import Any

from opa_mongodb_common import AsyncMongoDriver


class MotorDriver(AsyncMongoDriver):
    """Async MongoDB driver on Motor; ``get_instance()`` gives an ``AsyncIOMotorClient``."""

    name = "mongodb-async-motor"
    legacy_names = ("opa.plugins.driver_mongodb.MongodbMotorAsync",)

    def new_client(self) -> Any:
        from motor.motor_asyncio import AsyncIOMotorClient

        return AsyncIOMotorClient(self.opts.URL, **self.opts.client_kwargs())

    async def disconnect(self) -> None:
        # Motor's close() is a plain method, unlike PyMongo's async one.
        self.instance.close()
