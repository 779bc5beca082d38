"""The waiting pool against a real Redis: bursts queue, and cut commands give slots back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opa_driver_redis_aioredis import AioredisDriver
from opa_redis_common import RedisOptions


def test_cut_commands_leave_every_connection_usable(redis_url: str, redis_prefix: str) -> None:
    """Many commands cut by the deadline while queued or running on a pool of 2; after,
    two blocking commands still run side by side, so no slot was lost."""
    empty = f"{redis_prefix}empty"

    async def scenario() -> tuple[list[Any], float]:
        opts = RedisOptions(URL=redis_url, MAX_CONNECTIONS=2, SOCKET_TIMEOUT=0.2)
        driver = AioredisDriver("aioredis", opts)
        await driver.connect()
        try:
            client = driver.get_instance()
            chaos = [
                client.blpop(empty, 1) if n % 3 else client.incr(empty + "n") for n in range(60)
            ]
            outcomes = await asyncio.gather(*chaos, return_exceptions=True)
            client.deadlines.seconds = 2
            started = time.monotonic()
            await asyncio.gather(client.blpop(empty, 0.5), client.blpop(empty, 0.5))
            return outcomes, time.monotonic() - started
        finally:
            await driver.disconnect()

    outcomes, side_by_side = asyncio.run(scenario())
    assert any(isinstance(outcome, Exception) for outcome in outcomes), "nothing was cut"
    assert side_by_side < 0.9, f"the two commands took {side_by_side:.2f}s: one waited"


def test_a_queued_command_runs_as_soon_as_a_connection_is_released(
    redis_url: str, redis_prefix: str
) -> None:
    async def scenario() -> float:
        opts = RedisOptions(URL=redis_url, MAX_CONNECTIONS=1, SOCKET_TIMEOUT=5)
        driver = AioredisDriver("aioredis", opts)
        await driver.connect()
        try:
            client = driver.get_instance()
            started = time.monotonic()
            await asyncio.gather(client.blpop(f"{redis_prefix}empty", 0.3), client.ping())
            return time.monotonic() - started
        finally:
            await driver.disconnect()

    assert 0.3 <= asyncio.run(scenario()) < 1.5
