"""The pool's watch against a real Redis: SOCKET_TIMEOUT with one timer, not one per command.

A BLPOP on an empty list stands in for a command whose reply never comes (as in
test_socket_timeout.py, which checks the timeout's outcomes; these check how it is kept).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from aioredis_clients import SLACK, TIMEOUT, checkout, connected, seconds_until_timeout
from opa.testing import RedisServer
from opa_driver_redis_aioredis import AioredisDriver
from opa_driver_redis_aioredis.watch import (
    WatchedConnection,
    WatchedSSLConnection,
    WatchedUnixConnection,
    watched_url_options,
)
from opa_redis_common import RedisOptions


class LoopCounts:
    """Timers and tasks started on the running loop inside the ``with`` block."""

    def __init__(self) -> None:
        self.timers = 0
        self.tasks = 0
        self.loop = asyncio.get_running_loop()

    def __enter__(self) -> LoopCounts:
        call_at = self.loop.call_at

        def counting_call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
            self.timers += 1
            return call_at(when, callback, *args, **kwargs)

        def counting_factory(
            loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
        ) -> asyncio.Task[Any]:
            self.tasks += 1
            return asyncio.Task(coro, loop=loop, **kwargs)

        self.loop.call_at = counting_call_at  # type: ignore[method-assign]
        self.loop.set_task_factory(counting_factory)  # type: ignore[arg-type]
        return self

    def __exit__(self, *exc_info: object) -> None:
        del self.loop.call_at  # the instance attribute goes; the class's method is back
        self.loop.set_task_factory(None)


def test_many_commands_in_flight_arm_one_timer_and_start_no_task(
    redis_url: str, redis_prefix: str
) -> None:
    """redis-py's own socket timeout arms two timers and starts a task for every command."""
    key = f"{redis_prefix}n"

    async def scenario() -> tuple[int, LoopCounts]:
        async with connected(redis_url, SOCKET_TIMEOUT=5, HEALTH_CHECK_INTERVAL=0) as client:
            await asyncio.gather(*(client.ping() for _ in range(32)))  # connections made

            async def incr_ten() -> None:
                for _ in range(10):
                    await client.incr(key)

            with LoopCounts() as counts:
                await asyncio.gather(*(incr_ten() for _ in range(32)))
            return int(await client.get(key) or 0), counts

    value, counts = asyncio.run(scenario())
    assert value == 320
    assert counts.tasks == 32  # the gather's own
    # The watch's first deadline falls after the commands are done: no second timer.
    assert counts.timers <= 1


def test_each_overdue_command_is_cut_at_its_own_deadline(redis_url: str, redis_prefix: str) -> None:
    """The timer moves on to the next oldest command, and commands that answer in time
    around the overdue ones are not disturbed."""
    empty = f"{redis_prefix}empty"

    async def scenario() -> tuple[list[float], int]:
        async with connected(redis_url, SOCKET_TIMEOUT=TIMEOUT) as client:
            started = time.monotonic()

            async def cut_after(delay: float) -> float:
                await asyncio.sleep(delay)
                await seconds_until_timeout(lambda: client.blpop(empty, 5), match="SOCKET_TIMEOUT")
                return time.monotonic() - started

            async def answered() -> int:
                count = 0
                while time.monotonic() - started < 2 * TIMEOUT:
                    await client.incr(f"{redis_prefix}n")
                    count += 1
                return count

            first, second, count = await asyncio.gather(
                cut_after(0), cut_after(TIMEOUT / 2), answered()
            )
            return [first, second], count

    (first, second), count = asyncio.run(scenario())
    assert TIMEOUT <= first < TIMEOUT + SLACK
    assert 1.5 * TIMEOUT <= second < 1.5 * TIMEOUT + SLACK
    assert count > 0


def test_the_watch_follows_the_client_to_a_new_event_loop(
    redis_url: str, redis_prefix: str
) -> None:
    """A deadline set on a loop that has since closed would never fire; the next loop
    gets a timer of its own."""
    driver = AioredisDriver("aioredis", RedisOptions(URL=redis_url, SOCKET_TIMEOUT=TIMEOUT))

    async def answered() -> None:
        await driver.connect()
        await driver.get_instance().incr(f"{redis_prefix}n")  # the watch's timer, this loop
        await driver.get_instance().connection_pool.disconnect()  # its sockets are this loop's

    async def cut() -> float:
        return await seconds_until_timeout(
            lambda: driver.get_instance().blpop(f"{redis_prefix}empty", 5)
        )

    asyncio.run(answered())
    try:
        took = asyncio.run(cut())
    finally:
        asyncio.run(driver.disconnect())
    assert TIMEOUT <= took < TIMEOUT + SLACK


def test_a_health_check_inside_a_command_shares_its_deadline(
    redis_url: str, redis_prefix: str
) -> None:
    """The PING of a due health check runs inside the next command's send: the command
    still succeeds, and a later command without a reply is still cut."""

    async def scenario() -> tuple[int, float]:
        async with connected(redis_url, SOCKET_TIMEOUT=TIMEOUT, HEALTH_CHECK_INTERVAL=1) as client:
            await client.ping()
            await asyncio.sleep(1.1)  # the next command checks the connection first
            value: int = await client.incr(f"{redis_prefix}n")
            return value, await seconds_until_timeout(
                lambda: client.blpop(f"{redis_prefix}empty", 5)
            )

    value, took = asyncio.run(scenario())
    assert value == 1
    assert TIMEOUT <= took < TIMEOUT + SLACK


def test_a_reply_read_as_its_command_is_cut_stands_and_the_connection_goes(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline can pass in the loop turn that brings the reply: the reply is returned,
    and the cut connection is dropped so the next command gets a fresh one."""

    async def scenario() -> tuple[int, bool, int]:
        async with connected(redis_url, SOCKET_TIMEOUT=5) as client:
            await client.ping()
            connection = await checkout(client.connection_pool)
            await client.connection_pool.release(connection)
            parser_read = connection._parser.read_response

            async def read_then_cut(*args: Any, **kwargs: Any) -> Any:
                reply = await parser_read(*args, **kwargs)
                connection.cut()  # what the watch's timer does at the deadline
                return reply

            monkeypatch.setattr(connection._parser, "read_response", read_then_cut)
            value: int = await client.incr(f"{redis_prefix}n")
            monkeypatch.undo()
            dropped = not connection.is_connected
            return value, dropped, await client.incr(f"{redis_prefix}n")

    assert asyncio.run(scenario()) == (1, True, 2)


@pytest.mark.parametrize(
    ("url", "chosen"),
    [
        ("redis://127.0.0.1:6379/0", WatchedConnection),
        ("rediss://127.0.0.1:6380/0", WatchedSSLConnection),
        ("unix:///run/redis.sock?db=0", WatchedUnixConnection),
    ],
)
def test_each_scheme_gets_the_watched_form_of_its_connection_class(url: str, chosen: type) -> None:
    options = watched_url_options(url, 2.5)
    assert options["connection_class"] is chosen
    assert options["socket_timeout"] is None  # redis-py keeps no timeout of its own
    assert options["watch"].timeout == 2.5
    base = {WatchedConnection: Connection, WatchedSSLConnection: SSLConnection}
    assert issubclass(chosen, base.get(chosen, UnixDomainSocketConnection))


def test_a_socket_timeout_in_the_url_sets_the_watch_as_it_set_redis_py(
    redis_url: str, redis_prefix: str
) -> None:
    options = watched_url_options("redis://127.0.0.1:6379/0?socket_timeout=0.25", 5)
    assert (options["watch"].timeout, options["socket_timeout"]) == (0.25, None)

    async def scenario() -> float:
        url = f"{redis_url}?socket_timeout={TIMEOUT}"
        async with connected(url, SOCKET_TIMEOUT=30) as client:
            return await seconds_until_timeout(lambda: client.blpop(f"{redis_prefix}empty", 5))

    assert TIMEOUT <= asyncio.run(scenario()) < TIMEOUT + SLACK


@pytest.fixture
def unix_redis() -> Iterator[str]:
    """A private redis-server listening on a unix socket only."""
    server = RedisServer(unix_socket=True)
    try:
        server.start()
        yield server.url
    finally:
        server.close()


def test_a_unix_socket_url_is_served_and_watched(unix_redis: str) -> None:
    async def scenario() -> tuple[int, float]:
        async with connected(unix_redis, SOCKET_TIMEOUT=TIMEOUT) as client:
            assert client.connection_pool.connection_class is WatchedUnixConnection
            value: int = await client.incr("n")
            return value, await seconds_until_timeout(lambda: client.blpop("empty", 5))

    value, took = asyncio.run(scenario())
    assert value == 1
    assert TIMEOUT <= took < TIMEOUT + SLACK
