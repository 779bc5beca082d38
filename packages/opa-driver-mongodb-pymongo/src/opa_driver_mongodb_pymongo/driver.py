"""The ``mongodb-async-pymongo`` driver: only building and closing PyMongo's client are its own."""

from __future__ import annotations

from typing import Any

from opa_mongodb_common import AsyncMongoDriver


class PyMongoDriver(AsyncMongoDriver):
    """Async MongoDB driver on PyMongo; ``get_instance()`` gives a ``pymongo.AsyncMongoClient``."""

    name = "mongodb-async-pymongo"

    def new_client(self) -> Any:
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self.opts.URL, **self.opts.client_kwargs()
        )
        return client

    async def disconnect(self) -> None:
        # PyMongo's async close() is a coroutine, unlike Motor's.
        await self.instance.close()
