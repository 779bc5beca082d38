"""Test kit of the Redis drivers (needs the ``testing`` extra): their compliance suite and keys.

Enable the fixtures in a conftest with
``pytest_plugins = ["opa.testing.fixtures", "opa_redis_common.testing"]``, then subclass
:class:`RedisDriverSuite` with the driver's name and distribution. Both drivers run the same
cases, so they live here once.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from opa import Component
from opa.testing import DriverComplianceSuite, closed_port, delete_keys

CLIENT_LIBRARIES = ("redis", "walrus", "hiredis")


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; every key containing it is deleted afterwards.

    The shared server is never flushed: other tests and other programs may use it.
    """
    import redis

    prefix = f"opa-test:{secrets.token_hex(6)}:"
    yield prefix
    with redis.Redis.from_url(redis_url) as client:
        delete_keys(client, f"*{prefix}")  # a driver may put its own prefix before ours


async def resolved(value: Any) -> Any:
    """*value*, awaited when an async client handed back an awaitable."""
    return await value if inspect.isawaitable(value) else value


class RedisDriverSuite(DriverComplianceSuite):
    """opa's compliance suite with Redis options, plus the cases every Redis driver shares."""

    client_libraries = CLIENT_LIBRARIES
    timeout_options: ClassVar[dict[str, Any]] = {
        "CONNECT_TIMEOUT": 1,
        "SOCKET_TIMEOUT": 1,
        "RETRIES": 1,
        "RETRY_BACKOFF_CAP": 0.1,
    }
    blocking_timeout = 2.0  # one try and its retry, each bounded by a 1s timeout

    @pytest.fixture
    def live_options(self, redis_url: str) -> dict[str, Any]:
        return {"URL": redis_url, "SOCKET_TIMEOUT": 2, "CONNECT_TIMEOUT": 2}

    @pytest.fixture
    def admin_url(self, redis_url: str) -> Callable[[str], str]:
        """The plain URL of the server holding a key, for a case's own admin client: the
        session's Redis; a Sentinel suite names the master the sentinels name, a cluster's
        suite the master of the key's slot."""
        return lambda key: redis_url

    def unreachable_options(self) -> dict[str, Any]:
        return {"URL": f"redis://127.0.0.1:{closed_port()}/0", "CONNECT_TIMEOUT": 1}

    def credential_options(self, password: str) -> dict[str, Any]:
        return {"URL": f"redis://opa:{password}@127.0.0.1:{closed_port()}/0"}

    def invalid_options(self) -> list[tuple[dict[str, Any], str]]:
        url = "redis://127.0.0.1:6379/0"
        return [
            ({"URL": "http://127.0.0.1:6379/0"}, "URL"),
            ({"URL": url, "MAX_CONNECTIONS": -1}, "MAX_CONNECTIONS"),
            ({"URL": url, "MAX_CONNECTIONS": 10**9}, "MAX_CONNECTIONS"),
            ({"URL": url, "CONNECT_TIMEOUT": 0}, "CONNECT_TIMEOUT"),
            ({"URL": url, "SOCKET_TIMEOUT": 0}, "SOCKET_TIMEOUT"),
            ({"URL": url, "RETRIES": -1}, "RETRIES"),
            ({"URL": url, "POOL_SIZE": 10}, "POOL_SIZE"),
        ]

    def refused_options(self, live_options: dict[str, Any], password: str) -> dict[str, Any]:
        """A login the shared server refuses: a user it does not know."""
        url = live_options["URL"]
        scheme, _, rest = url.partition("://")
        return {
            **live_options,
            "URL": f"{scheme}://opa-nobody:{password}@{rest.rpartition('@')[2]}",
        }

    def round_trip(self, component: Component, token: str) -> Any:
        """ECHO through the client: a sync value, or an awaitable from the asyncio one."""
        return component.instance.echo(token)

    def test_options_reach_the_server(self, live_options: dict[str, Any]) -> None:
        """CLIENT_NAME names the connection on the server, and DECODE_RESPONSES gives str."""
        name = f"opa-test-{secrets.token_hex(4)}"
        opts = {**live_options, "CLIENT_NAME": name, "DECODE_RESPONSES": True}
        components = self.make_components("yes", opts)

        async def ask_name() -> Any:
            await components.start()
            try:
                client = components.get(self.component_name).instance
                return await resolved(client.client_getname())
            finally:
                await components.stop()

        assert asyncio.run(ask_name()) == name

    def test_a_connection_dropped_mid_command_is_retried(
        self, live_options: dict[str, Any], admin_url: Callable[[str], str], redis_prefix: str
    ) -> None:
        """A connection killed during a command is replaced and the command sent again."""
        import redis

        name = f"opa-test-{secrets.token_hex(4)}"
        key = f"{redis_prefix}queue"
        opts = {**live_options, "CLIENT_NAME": name, "SOCKET_TIMEOUT": 5, "RETRIES": 2}
        components = self.make_components("yes", opts)
        is_async = self.driver_class().is_async

        def kill_then_push() -> None:
            with redis.Redis.from_url(admin_url(key), decode_responses=True) as admin:
                for _ in range(100):
                    waiting = [
                        c for c in admin.client_list() if c["name"] == name and "blpop" in c["cmd"]
                    ]
                    if waiting:
                        admin.client_kill_filter(_id=waiting[0]["id"])
                        admin.rpush(key, "job")
                        return
                    time.sleep(0.05)
            raise AssertionError("the driver's BLPOP never showed up in CLIENT LIST")

        async def pop() -> Any:
            await components.start()
            try:
                client = components.get(self.component_name).instance
                waiting = (
                    client.blpop(key, 3) if is_async else asyncio.to_thread(client.blpop, key, 3)
                )
                popped, _ = await asyncio.gather(waiting, asyncio.to_thread(kill_then_push))
                return popped
            finally:
                await components.stop()

        assert asyncio.run(pop()) == (key.encode(), b"job")
