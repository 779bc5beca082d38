"""The driver's pool against a real Redis: a free connection costs no timer, a busy pool
still waits and times out as redis-py's does, and a failed checkout gives its slot back."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import redis.asyncio.connection
from redis.exceptions import ConnectionError as RedisConnectionError

from aioredis_clients import SLACK, TIMEOUT, checkout, connected
from opa.testing import closed_port
from opa_driver_redis_aioredis.pool import FreeFirstBlockingPool


@pytest.fixture
def timers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float | None]]:
    """The delays of the timers redis-py's connection module arms (pool waits, connects)."""
    armed: list[float | None] = []
    original = redis.asyncio.connection.async_timeout

    def counting(delay: float | None) -> AbstractAsyncContextManager[Any]:
        armed.append(delay)
        return original(delay)

    monkeypatch.setattr(redis.asyncio.connection, "async_timeout", counting)
    yield armed


def test_the_driver_builds_its_client_on_this_pool(redis_url: str) -> None:
    async def scenario() -> object:
        async with connected(redis_url) as client:
            return client.connection_pool

    assert isinstance(asyncio.run(scenario()), FreeFirstBlockingPool)


def test_a_free_connection_is_handed_out_without_a_timer(
    redis_url: str, redis_prefix: str, timers: list[float | None]
) -> None:
    async def scenario() -> tuple[int, list[float | None]]:
        async with connected(redis_url, SOCKET_TIMEOUT=5) as client:
            pool = client.connection_pool
            await client.ping()  # the connection is made (that arms a connect timer)
            timers.clear()
            first = await checkout(pool)
            await pool.release(first)
            again = await checkout(pool)
            assert again is first
            await pool.release(again)
            with warnings.catch_warnings():
                # The client's own arguments reach redis-py as given: no deprecation on any
                # release, whether it sends the command name (5.0) or nothing (5.3+).
                warnings.simplefilter("error", DeprecationWarning)
                value: int = await client.incr(f"{redis_prefix}n")
            return value, list(timers)

    value, armed = asyncio.run(scenario())
    assert value == 1
    # No checkout armed a timer, and neither did the INCR: its reply is kept by the pool's
    # watch (test_watch.py). The next test shows these timers are seen when armed.
    assert armed == []


def test_a_checkout_that_must_wait_gets_the_connection_when_it_is_released(
    redis_url: str, timers: list[float | None]
) -> None:
    async def scenario() -> bool:
        async with connected(redis_url, SOCKET_TIMEOUT=5, MAX_CONNECTIONS=1) as client:
            pool = client.connection_pool
            held = await checkout(pool)
            timers.clear()
            waiter = asyncio.create_task(checkout(pool))
            await asyncio.sleep(0.05)
            assert not waiter.done()
            assert timers == [5.0]  # the wait, bounded by the pool timeout (SOCKET_TIMEOUT)
            await pool.release(held)
            got = await asyncio.wait_for(waiter, 2)
            await pool.release(got)
            return got is held

    assert asyncio.run(scenario())


def test_a_checkout_that_waits_too_long_is_an_outage_error(redis_url: str) -> None:
    async def scenario() -> float:
        async with connected(redis_url, SOCKET_TIMEOUT=TIMEOUT, MAX_CONNECTIONS=1) as client:
            pool = client.connection_pool
            held = await checkout(pool)
            started = time.monotonic()
            try:
                with pytest.raises(RedisConnectionError, match="No connection available"):
                    await checkout(pool)
                return time.monotonic() - started
            finally:
                await pool.release(held)

    assert TIMEOUT <= asyncio.run(scenario()) < TIMEOUT + SLACK


def test_a_checkout_that_cannot_connect_gives_its_slot_back() -> None:
    """With one slot and no server, every attempt fails to connect at once; a leaked slot
    would turn the later ones into a wait for "No connection available"."""

    async def scenario() -> list[str]:
        url = f"redis://127.0.0.1:{closed_port()}/0"
        async with connected(url, SOCKET_TIMEOUT=TIMEOUT, MAX_CONNECTIONS=1) as client:
            pool = client.connection_pool
            errors = []
            for _ in range(3):
                with pytest.raises(RedisConnectionError) as caught:
                    await checkout(pool)
                errors.append(str(caught.value))
            return errors

    for error in asyncio.run(scenario()):
        assert "No connection available" not in error


def test_a_checkout_that_loses_the_free_connection_waits_for_the_next(redis_url: str) -> None:
    """Taking the lock can yield to a task queued for it, which may take the last free
    connection; the checkout then waits like any other instead of failing with "Too many
    connections". The stale first look is played by a pool that says "free" once."""

    async def scenario() -> bool:
        async with connected(redis_url, SOCKET_TIMEOUT=5, MAX_CONNECTIONS=1) as client:
            pool = client.connection_pool
            held = await checkout(pool)
            truth = pool.can_get_connection
            looks = iter([True])
            pool.can_get_connection = lambda: next(looks, None) or truth()  # type: ignore[method-assign]
            waiter = asyncio.create_task(checkout(pool))
            await asyncio.sleep(0.05)
            assert not waiter.done()
            await pool.release(held)
            got = await asyncio.wait_for(waiter, 2)
            await pool.release(got)
            return got is held

    assert asyncio.run(scenario())


def test_a_pool_in_maintenance_checks_out_through_redis_py(
    redis_url: str, timers: list[float | None]
) -> None:
    """While redis-py 8.1+ applies a maintenance notification (its ``_in_maintenance``), a
    checkout is redis-py's own, timer included, so it waits for the pool's lock."""

    async def scenario() -> list[float | None]:
        async with connected(redis_url, SOCKET_TIMEOUT=5) as client:
            pool = client.connection_pool
            await client.ping()
            pool._in_maintenance = True  # what redis-py 8.1's set_in_maintenance(True) sets
            timers.clear()
            await pool.release(await checkout(pool))
            return list(timers)

    assert asyncio.run(scenario()) == [5.0]
