"""The redis-py internals the driver builds on, one test each (README, "redis-py internals").

redis-py does not promise any of these between releases. When one moves, its test here
fails with a message naming the attribute and the driver module that needs it, instead of
the driver failing in some roundabout way.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio import connection as redis_connection
from redis.asyncio.connection import AbstractConnection, Connection

from aioredis_clients import checkout


def moved(name: str, user: str) -> str:
    """The failure message: which redis-py name changed, and which driver module needs it."""
    return (
        f"redis-py changed {name}, which opa_driver_redis_aioredis/{user} relies on: "
        "adapt it, or narrow the redis range in the driver's pyproject.toml"
    )


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_blocking_pool_condition_is_the_lock_release_takes() -> None:
    """BlockingConnectionPool._condition is an asyncio.Condition that release() acquires."""
    name = moved("BlockingConnectionPool._condition", "pool.py")

    async def scenario() -> None:
        pool = BlockingConnectionPool(max_connections=1)
        condition = getattr(pool, "_condition", None)
        assert isinstance(condition, asyncio.Condition), name
        connection = pool.get_available_connection()
        async with condition:
            releasing = asyncio.ensure_future(pool.release(connection))
            for _ in range(5):
                await asyncio.sleep(0)
            assert not releasing.done(), name  # release() waits for the condition's lock
        await releasing
        await pool.aclose()

    asyncio.run(scenario())


def test_maintenance_flag_is_what_set_in_maintenance_sets() -> None:
    """On redis-py with maintenance notifications on asyncio pools (8.1+),
    ``set_in_maintenance(on)`` sets ``BlockingConnectionPool._in_maintenance``; before, it
    has neither, and no maintenance to step aside for."""
    name = moved("BlockingConnectionPool._in_maintenance", "pool.py")
    pool = BlockingConnectionPool(max_connections=1)
    setter = getattr(pool, "set_in_maintenance", None)
    if setter is None:
        assert not hasattr(pool, "_in_maintenance"), name
        return
    assert getattr(pool, "_in_maintenance", None) is False, name
    setter(True)
    assert getattr(pool, "_in_maintenance", None) is True, name
    setter(False)
    assert getattr(pool, "_in_maintenance", None) is False, name


def test_can_get_connection_says_whether_a_slot_is_free() -> None:
    """ConnectionPool.can_get_connection() is true while a slot is free, false when full."""
    name = moved("ConnectionPool.can_get_connection()", "pool.py")
    pool = BlockingConnectionPool(max_connections=1)
    assert callable(getattr(pool, "can_get_connection", None)), name
    assert parameters(pool.can_get_connection) == [], name
    assert pool.can_get_connection(), name
    pool.get_available_connection()
    assert not pool.can_get_connection(), name


def test_get_available_connection_takes_a_slot_without_io() -> None:
    """ConnectionPool.get_available_connection() is a plain function: it takes a slot and
    hands back a connection it has not connected."""
    name = moved("ConnectionPool.get_available_connection()", "pool.py")
    method = getattr(ConnectionPool, "get_available_connection", None)
    assert method is not None and not inspect.iscoroutinefunction(method), name
    pool = BlockingConnectionPool(max_connections=2)
    connection = pool.get_available_connection()
    assert isinstance(connection, AbstractConnection), name
    assert not connection.is_connected, name
    assert pool.get_available_connection() is not connection, name


def test_ensure_connection_connects_what_get_available_connection_gave(redis_url: str) -> None:
    """await ConnectionPool.ensure_connection(connection) connects a pool's new connection."""
    name = moved("ConnectionPool.ensure_connection()", "pool.py")
    method = getattr(ConnectionPool, "ensure_connection", None)
    assert method is not None and inspect.iscoroutinefunction(method), name
    assert parameters(method) == ["self", "connection"], name

    async def scenario() -> bool:
        pool = BlockingConnectionPool.from_url(redis_url, max_connections=1)
        connection = pool.get_available_connection()
        await pool.ensure_connection(connection)
        connected = connection.is_connected
        await pool.aclose()
        return connected

    assert asyncio.run(scenario()), name


def test_connection_writer_is_the_stream_writer_while_connected(redis_url: str) -> None:
    """AbstractConnection._writer is the asyncio.StreamWriter while connected, else None."""
    name = moved("AbstractConnection._writer", "watch.py")

    async def scenario() -> None:
        client = Redis.from_url(redis_url)
        connection = await checkout(client.connection_pool)
        assert isinstance(getattr(connection, "_writer", None), asyncio.StreamWriter), name
        await connection.disconnect()
        assert getattr(connection, "_writer", "missing") is None, name
        await client.connection_pool.release(connection)
        await client.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("send_packed_command", ["self", "command", "check_health"]),
        ("read_response", ["self", "disable_decoding", "timeout"]),
        ("disconnect", ["self", "nowait"]),
        ("connect", ["self"]),
    ],
)
def test_connection_methods_the_watch_overrides_or_calls(method: str, expected: list[str]) -> None:
    """The connection methods watch.py overrides or calls keep their leading parameters."""
    function = getattr(Connection, method, None)
    name = moved(f"AbstractConnection.{method}{tuple(expected[1:])}", "watch.py")
    assert function is not None and inspect.iscoroutinefunction(function), name
    assert parameters(function)[: len(expected)] == expected, name


def test_parse_url_gives_the_connection_arguments_of_a_url() -> None:
    """redis.asyncio.connection.parse_url() names the connection class of rediss:// and
    unix:// URLs, and reads socket_timeout from the query, as watch.py expects."""
    name = moved("redis.asyncio.connection.parse_url()", "watch.py")
    parse_url = getattr(redis_connection, "parse_url", None)
    assert callable(parse_url), name
    assert "connection_class" not in parse_url("redis://127.0.0.1:6379/0"), name
    secure = parse_url("rediss://127.0.0.1:6380/0?socket_timeout=2")
    assert secure["connection_class"] is redis_connection.SSLConnection, name
    assert secure["socket_timeout"] == 2.0, name
    unix = parse_url("unix:///run/redis.sock?db=1")
    assert unix["connection_class"] is redis_connection.UnixDomainSocketConnection, name
    assert unix["path"] == "/run/redis.sock", name


def test_connection_parser_has_read_response() -> None:
    """AbstractConnection._parser.read_response, which test_watch.py wraps to cut a command
    just as its reply arrives (a test's use, not the driver's)."""
    name = moved("AbstractConnection._parser.read_response", "tests/test_watch.py")
    parser = getattr(Connection(), "_parser", None)
    assert parser is not None and inspect.iscoroutinefunction(parser.read_response), name


def test_cluster_retries_are_a_class_attribute_holding_timeouts() -> None:
    """RedisCluster.ERRORS_ALLOW_RETRY is the tuple of errors the cluster client retries, with
    TimeoutError among them, and the driver's subclass leaves TimeoutError out of it."""
    from redis.asyncio.cluster import RedisCluster
    from redis.exceptions import ConnectionError, TimeoutError

    from opa_driver_redis_aioredis.cluster import TimeoutsNotRetriedCluster

    name = moved("RedisCluster.ERRORS_ALLOW_RETRY", "cluster.py")
    retried = getattr(RedisCluster, "ERRORS_ALLOW_RETRY", None)
    assert isinstance(retried, tuple), name
    assert TimeoutError in retried and ConnectionError in retried, name
    assert TimeoutError not in TimeoutsNotRetriedCluster.ERRORS_ALLOW_RETRY
    assert ConnectionError in TimeoutsNotRetriedCluster.ERRORS_ALLOW_RETRY


def test_cluster_retry_parameters_are_those_of_one_of_two_shapes() -> None:
    """RedisCluster takes either redis-py 5's retry counts (cluster_error_retry_attempts and
    connection_error_retry_attempts) or a cluster-wide `retry` without the second."""
    from redis.asyncio.cluster import RedisCluster

    name = moved("RedisCluster.__init__'s retry parameters", "cluster.py")
    given = parameters(RedisCluster.__init__)
    if "connection_error_retry_attempts" in given:
        assert "cluster_error_retry_attempts" in given, name
    else:
        assert "retry" in given, name
