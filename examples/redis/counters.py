"""Counters: the same INCR through the sync walrus driver and the asyncio redis driver."""

from typing import Annotated

from fastapi import Query
from redis.asyncio import Redis
from walrus import Database

from opa import config, get_instance, get_router

router = get_router(tags=["counters"])

# Keys come from the caller, so they are kept short and plain.
Key = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


def redis_key(key: str) -> str:
    return f"{config.EXAMPLE_KEY_PREFIX}counter:{key}"


@router.get("/counter-sync")
def counter_sync(key: Key = "default") -> int:
    """Add one to the counter *key* and return it (a sync route: it runs in a thread)."""
    db: Database = get_instance("walrus")
    value: int = db.incr(redis_key(key))
    return value


@router.get("/counter-async")
async def counter_async(key: Key = "default") -> int:
    """Add one to the counter *key* and return it, without leaving the event loop.

    The typed form works too: ``client: Annotated[Redis, Instance("aioredis")]``; it
    costs a FastAPI dependency resolution per request.
    """
    client: Redis = get_instance("aioredis")
    value: int = await client.incr(redis_key(key))
    return value
