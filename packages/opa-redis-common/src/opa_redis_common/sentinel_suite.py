"""Test kit of the Redis drivers on Redis Sentinel (needs the ``testing`` extra).

:class:`SentinelDriverSuite` runs the Redis compliance suite against a Sentinel deployment
of its own (``opa.testing.RedisSentinelGroup``: a master, a replica, three sentinels, both
logins set) through a ``redis+sentinel://`` URL, and adds the cases only Sentinel has:
``LOAD: auto`` over a list of sentinels, a refused sentinel login or unknown service, a
fail-over under load (:mod:`opa_redis_common.failover`), the writes a lagging replica
loses, and ``WAIT`` through a pipeline. A driver package subclasses it with its driver's
name and distribution, as it does :class:`RedisDriverSuite`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from opa import ComponentError, Status
from opa.testing import (
    LOCALHOST,
    RedisSentinelGroup,
    ServiceUnavailable,
    TcpProxy,
    captured_logs,
    closed_port,
    skip_or_fail,
)
from opa_redis_common.failover import run_failover
from opa_redis_common.testing import RedisDriverSuite, resolved

SERVICE = "opa-test"
PASSWORD = secrets.token_hex(8)
SENTINEL_PASSWORD = secrets.token_hex(8)


@contextlib.contextmanager
def sentinel_group(**kwargs: Any) -> Iterator[RedisSentinelGroup]:
    """A started Sentinel deployment with both logins set (skipped, or failed under CI,
    when it cannot start); stopped at the end."""
    options = {"password": PASSWORD, "sentinel_password": SENTINEL_PASSWORD, **kwargs}
    with RedisSentinelGroup(service=SERVICE, **options) as group:
        try:
            group.start()
        except ServiceUnavailable as error:
            skip_or_fail(str(error))
        yield group


def server_url(port: int) -> str:
    """The plain URL of one Redis server of a deployment, for a test's own admin client."""
    return f"redis://:{PASSWORD}@{LOCALHOST}:{port}/0"


class SentinelDriverSuite(RedisDriverSuite):
    """The Redis compliance suite through a ``redis+sentinel://`` URL, and fail-over cases."""

    failover_options: ClassVar[dict[str, Any]] = {
        "CONNECT_TIMEOUT": 1,
        "SOCKET_TIMEOUT": 1,
        "RETRIES": 2,
        "RETRY_BACKOFF_BASE": 0.05,
        "RETRY_BACKOFF_CAP": 0.2,
    }

    @pytest.fixture(scope="class")
    @classmethod
    def deployment(cls) -> Iterator[RedisSentinelGroup]:
        """The class's Sentinel deployment: a master, a replica, three sentinels."""
        with sentinel_group() as group:
            yield group

    @pytest.fixture
    def live_options(self, deployment: RedisSentinelGroup) -> dict[str, Any]:
        return {"URL": deployment.url, "SOCKET_TIMEOUT": 2, "CONNECT_TIMEOUT": 2}

    @pytest.fixture
    def admin_url(self, deployment: RedisSentinelGroup) -> Callable[[str], str]:
        address = deployment.master_address()
        assert address is not None, "no sentinel names a master"
        return lambda key: server_url(address[1])

    def unreachable_options(self) -> dict[str, Any]:
        return {"URL": f"redis+sentinel://{LOCALHOST}:{closed_port()}/{SERVICE}/0"}

    def credential_options(self, password: str) -> dict[str, Any]:
        """Both passwords: the servers' in the user-info, the sentinels' in the query."""
        where = f"{LOCALHOST}:{closed_port()}/{SERVICE}/0"
        return {"URL": f"redis+sentinel://opa:{password}@{where}?sentinel_password={password}"}

    def invalid_options(self) -> list[tuple[dict[str, Any], str]]:
        hosts = f"redis+sentinel://{LOCALHOST}:26379"
        return [
            *super().invalid_options(),
            ({"URL": hosts}, "URL"),  # no service
            ({"URL": f"{hosts}/{SERVICE}/zero"}, "URL"),
            ({"URL": f"redis+sentinel://{LOCALHOST}:0/{SERVICE}"}, "URL"),
            ({"URL": f"redis+sentinel://{LOCALHOST}:26379,/{SERVICE}"}, "URL"),
            ({"URL": f"{hosts}/{SERVICE}?socket_timeout=1"}, "URL"),
            ({"URL": f"rediss+sentinel://{LOCALHOST}:26379/{SERVICE}"}, "URL"),
            ({"URL": f"sentinel://{LOCALHOST}:26379"}, "URL"),
        ]

    @contextlib.contextmanager
    def outage_proxy(
        self, live_options: dict[str, Any]
    ) -> Iterator[tuple[TcpProxy, dict[str, Any]]]:
        """The proxy before the master, as the sentinel names it to clients, rather than
        before the sentinel: the outages then hit the connections to Redis itself.

        A deployment of its own (a master, one sentinel, quorum 1), watched through the
        proxy, so the sentinel sees the outage too: after a second it calls the master down
        and clients get "no master", an outage error as well, until the proxy forwards again.
        """
        with sentinel_group(replicas=0, sentinels=1, quorum=1, proxied=True) as group:
            assert group.proxy is not None
            yield group.proxy, {**live_options, **self.timeout_options, "URL": group.url}

    def test_auto_needs_one_sentinel_of_the_list(self, deployment: RedisSentinelGroup) -> None:
        """Under LOAD auto, one sentinel that answers among dead ones is enough to connect;
        when none answers the component is skipped, every sentinel named in the warning."""
        dead = [f"{LOCALHOST}:{closed_port()}" for _ in range(2)]
        live = f"{LOCALHOST}:{deployment.sentinels[0].port}"
        query = deployment.url.partition("?")[2]
        login = deployment.url.partition("://")[2].partition("@")[0]
        some = f"redis+sentinel://{login}@{','.join([*dead, live])}/{SERVICE}/0?{query}"
        none = f"redis+sentinel://{','.join(dead)}/{SERVICE}/0"
        for url, expected in ((some, Status.OK), (none, Status.SKIPPED)):
            components = self.make_components("auto", {"URL": url})
            with captured_logs() as logs:
                status = asyncio.run(self._status_once_started(components))
            assert status is expected, logs.getvalue()
        for address in dead:
            assert address in logs.getvalue()

    async def _status_once_started(self, components: Any) -> Status:
        await components.start()
        try:
            status: Status = components.get(self.component_name).status
            return status
        finally:
            await components.stop()

    @pytest.mark.parametrize("mistake", ["sentinel password", "service"])
    def test_a_wrong_sentinel_login_or_service_fails_start_up_clearly(
        self, deployment: RedisSentinelGroup, mistake: str
    ) -> None:
        """Sentinels that refuse the login, or know no such service, fail start-up with an
        error naming the component and what the sentinels said, and no password."""
        wrong = f"pw-{secrets.token_hex(8)}"
        url = deployment.url.replace(SENTINEL_PASSWORD, wrong)
        if mistake == "service":
            url = deployment.url.replace(f"/{SERVICE}/", "/no-such-service/")
        components = self.make_components("yes", {"URL": url})
        with pytest.raises(ComponentError) as caught:
            asyncio.run(components.start())
        message = str(caught.value)
        assert self.component_name in message, message
        assert "No master found for" in message, message
        if mistake == "sentinel password":  # each sentinel asked, by its address, and why
            for sentinel in deployment.sentinels:
                assert f"sentinel {LOCALHOST}:{sentinel.port} - " in message, message
            assert "AuthenticationError" in message, message
        for secret in (wrong, PASSWORD, SENTINEL_PASSWORD):
            assert secret not in message, message

    @pytest.mark.timeout(180)
    def test_a_failover_under_load_costs_fast_503s_and_no_restart(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With requests on a counter running, the master is killed: requests answer 200 or
        a fast 503 (never 500, never past the driver's bounds) until the sentinels promote
        the replica, then 200 again from the same app; the counter lost only writes the
        replica had not received, and none that WAIT saw on the replica."""
        is_async = bool(self.driver_class().is_async)
        with sentinel_group() as group:
            run = run_failover(group, self.driver_name, is_async, self.failover_options, tmp_path)
        with capsys.disabled():
            print(f"\n{self.driver_name}: {run.summary()}")
        run.check()

    @pytest.mark.timeout(180)
    def test_writes_a_lagging_replica_missed_are_lost_unless_wait_confirmed_them(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """When the replica has fallen behind (its link to the master held back) as the
        master dies, plain INCRs the master acknowledged are lost at the fail-over, and the
        counter goes back to what the replica had; no write WAIT confirmed is lost."""
        is_async = bool(self.driver_class().is_async)
        with sentinel_group(replication_proxied=True) as group:
            run = run_failover(
                group, self.driver_name, is_async, self.failover_options, tmp_path, lagging=True
            )
        with capsys.disabled():
            print(f"\n{self.driver_name}, lagging replica: {run.summary()}")
        run.check()
        assert run.lost("/count"), f"no acknowledged write was lost: {run.summary()}"

    def test_wait_through_a_pipeline_counts_the_replicas_that_have_a_write(
        self, live_options: dict[str, Any]
    ) -> None:
        """INCR and WAIT in one pipeline (one connection) report the one replica: the recipe
        the README gives for writes that must survive a fail-over."""
        components = self.make_components("yes", live_options)

        async def write_and_wait() -> Any:
            await components.start()
            try:
                client = components.get(self.component_name).instance
                pipe = client.pipeline(transaction=False)
                pipe.incr(f"opa-test:{secrets.token_hex(6)}:acked")
                pipe.wait(1, 2000)
                return await resolved(pipe.execute())
            finally:
                await components.stop()

        assert asyncio.run(write_and_wait()) == [1, 1]
