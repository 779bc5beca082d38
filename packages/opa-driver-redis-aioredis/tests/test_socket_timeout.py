"""SOCKET_TIMEOUT against a real Redis: a command without a reply ends there.

A BLPOP on an empty list is a command Redis does not answer until it times out
server-side, which stands in for a server that stopped answering, without touching the
shared server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aioredis_clients import SLACK, TIMEOUT, checkout, connected, seconds_until_timeout


def test_a_command_without_reply_ends_at_the_socket_timeout(
    redis_url: str, redis_prefix: str
) -> None:
    async def scenario() -> float:
        async with connected(redis_url, SOCKET_TIMEOUT=TIMEOUT) as client:
            return await seconds_until_timeout(lambda: client.blpop(f"{redis_prefix}empty", 5))

    assert TIMEOUT <= asyncio.run(scenario()) < TIMEOUT + SLACK


def test_pipelines_have_the_socket_timeout_too(redis_url: str, redis_prefix: str) -> None:
    empty = f"{redis_prefix}empty"

    async def scenario() -> tuple[float, float]:
        async with connected(redis_url, SOCKET_TIMEOUT=TIMEOUT) as client:
            # Not a transaction: inside MULTI, Redis would not let BLPOP block.
            pipe = client.pipeline(transaction=False)
            queued = await seconds_until_timeout(
                lambda: pipe.incr(f"{redis_prefix}n").blpop(empty, 5).execute()
            )

            async def while_watching() -> None:
                async with client.pipeline() as pipe:
                    await pipe.watch(empty)
                    await pipe.blpop(empty, 5)  # runs at once: the pipeline is watching

            return queued, await seconds_until_timeout(while_watching)

    for took in asyncio.run(scenario()):
        assert TIMEOUT <= took < TIMEOUT + SLACK


def test_the_wait_for_a_pooled_connection_ends_at_the_socket_timeout(
    redis_url: str, redis_prefix: str
) -> None:
    """With the only connection busy, a command fails after SOCKET_TIMEOUT with an outage
    error (so a route answers 503), and works once the connection is free."""

    async def scenario() -> tuple[float, bytes | None]:
        async with connected(redis_url, SOCKET_TIMEOUT=TIMEOUT, MAX_CONNECTIONS=1) as client:
            await client.set(f"{redis_prefix}k", "v")
            pool = client.connection_pool
            held = await checkout(pool)  # the pool's only connection, kept busy
            waited = await seconds_until_timeout(
                lambda: client.get(f"{redis_prefix}k"), (RedisConnectionError, RedisTimeoutError)
            )
            await pool.release(held)
            return waited, await client.get(f"{redis_prefix}k")

    waited, value = asyncio.run(scenario())
    assert TIMEOUT <= waited < TIMEOUT + SLACK
    assert value == b"v"


def test_a_cut_command_leaves_no_stale_reply_behind(redis_url: str, redis_prefix: str) -> None:
    """The connection of a cut BLPOP is dropped, so its late reply is never read as the
    reply of the next command, and Redis keeps the value it would have popped."""
    queue, key = f"{redis_prefix}queue", f"{redis_prefix}k"

    async def scenario() -> list[Any]:
        async with connected(redis_url, SOCKET_TIMEOUT=TIMEOUT, MAX_CONNECTIONS=1) as client:
            await client.set(key, "v")
            await seconds_until_timeout(lambda: client.blpop(queue, 2))
            await asyncio.sleep(0.1)  # the event loop closes the dropped socket
            with redis.Redis.from_url(redis_url) as admin:
                admin.rpush(queue, "late")
            return [await client.get(key), await client.llen(queue), await client.ping()]

    assert asyncio.run(scenario()) == [b"v", 1, True]


def test_a_slow_command_within_the_timeout_succeeds(redis_url: str, redis_prefix: str) -> None:
    """The timeout bounds a command; it does not shorten one that answers in time."""

    async def scenario() -> Any:
        async with connected(redis_url, SOCKET_TIMEOUT=2) as client:
            return await client.blpop(f"{redis_prefix}empty", 0.5)

    assert asyncio.run(scenario()) is None


def test_a_pubsub_listen_waits_as_the_installed_redis_py_has_it(
    redis_url: str, redis_prefix: str
) -> None:
    """listen() on redis-py 8 reads without a timeout (redis-py's own choice, which the
    driver keeps), so a message published after SOCKET_TIMEOUT arrives; before 8 the read
    ends at SOCKET_TIMEOUT with an outage error."""
    channel = f"{redis_prefix}news"

    async def scenario() -> Any:
        async with connected(redis_url, SOCKET_TIMEOUT=TIMEOUT) as client:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(channel)

            async def publish_late() -> None:
                await asyncio.sleep(TIMEOUT * 3)
                await client.publish(channel, "late")

            publisher = asyncio.ensure_future(publish_late())
            try:
                async for message in pubsub.listen():
                    return message["data"]
            except RedisTimeoutError as error:
                return error
            finally:
                await publisher
                await pubsub.aclose()

    outcome = asyncio.run(scenario())
    if int(redis.__version__.split(".")[0]) >= 8:
        assert outcome == b"late"
    else:
        assert isinstance(outcome, RedisTimeoutError), outcome
