"""The test kit's Sentinel deployment starts, names its master, and fails over for real.

Servers are spoken to with the kit's own RESP helper, so these tests need no client library.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from opa.testing import (
    LOCALHOST,
    RedisSentinelGroup,
    ServiceUnavailable,
    closed_port,
    skip_or_fail,
    wait_for,
)
from opa.testing._resp import ReplyError, as_fields, info_fields, redis_command
from opa.testing._services import RedisServer

PASSWORD = secrets.token_hex(8)
SENTINEL_PASSWORD = secrets.token_hex(8)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A private redis-server."""
    server = RedisServer()
    try:
        server.start()
    except ServiceUnavailable as error:
        skip_or_fail(str(error))
    yield server
    server.close()


def started(group: RedisSentinelGroup) -> RedisSentinelGroup:
    try:
        group.start()
    except ServiceUnavailable as error:
        skip_or_fail(str(error))
    return group


def test_a_group_fails_over_to_its_replica_when_the_master_dies() -> None:
    """Three sentinels (quorum 2) watch a master and its replica, both behind passwords;
    once the master is killed they promote the replica and name it as the master."""
    group = RedisSentinelGroup(password=PASSWORD, sentinel_password=SENTINEL_PASSWORD)
    with started(group):
        replica = group.replicas[0]
        assert group.master_address() == (LOCALHOST, group.master.port)
        hosts = ",".join(f"{LOCALHOST}:{sentinel.port}" for sentinel in group.sentinels)
        assert group.url == (
            f"redis+sentinel://:{PASSWORD}@{hosts}/opa-test/0?sentinel_password={SENTINEL_PASSWORD}"
        )
        for sentinel in group.sentinels:
            with pytest.raises(ReplyError):  # the sentinels want their own password
                redis_command(sentinel.port, "SENTINEL", "MASTERS")

        group.crash_master()
        assert not group.master.running
        wait_for(
            lambda: group.master_address() == (LOCALHOST, replica.port),
            30,
            "the sentinels to promote the replica",
        )
        role = redis_command(replica.port, "ROLE", password=PASSWORD)
        assert isinstance(role, list) and role[0] == "master"


def test_a_proxied_group_names_its_proxy_as_the_master() -> None:
    """With proxied, the sentinel watches the master through a proxy and names the proxy,
    so clients reach the master through it."""
    group = RedisSentinelGroup(replicas=0, sentinels=1, quorum=1, proxied=True)
    with started(group):
        assert group.proxy is not None
        assert group.master_address() == group.proxy.address
        assert redis_command(group.proxy.port, "PING") == "PONG"
        state = as_fields(redis_command(group.sentinels[0].port, "SENTINEL", "MASTER", "opa-test"))
        assert state["num-slaves"] == "0"
    assert group.proxy.closed


@pytest.mark.parametrize(
    ("counts", "shown"),
    [
        ({"replicas": -1}, "-1 replicas"),
        ({"sentinels": 0, "quorum": 1}, "0 sentinels"),
        ({"sentinels": 3, "quorum": 4}, "a quorum of 4"),
        ({"quorum": 0}, "a quorum of 0"),
    ],
)
def test_a_group_that_cannot_fail_over_is_refused(counts: dict[str, int], shown: str) -> None:
    """Counts no deployment can have are refused before anything starts, naming them."""
    with pytest.raises(ValueError, match=shown):
        RedisSentinelGroup(**counts)


def test_redis_command_reads_every_kind_of_reply(server: RedisServer) -> None:
    """Simple strings, integers, bulk strings, nil, arrays and errors come back as Python
    values; an error reply raises ReplyError."""
    assert redis_command(server.port, "SET", "opa:k", "v") == "OK"
    assert redis_command(server.port, "GET", "opa:k") == "v"
    assert redis_command(server.port, "GET", "opa:missing") is None
    assert redis_command(server.port, "INCR", "opa:n") == 1
    assert redis_command(server.port, "CONFIG", "GET", "appendonly") == ["appendonly", "no"]
    assert info_fields(redis_command(server.port, "INFO", "replication"))["role"] == "master"
    with pytest.raises(ReplyError, match="unknown command"):
        redis_command(server.port, "NO-SUCH-COMMAND")


def test_redis_command_to_a_closed_port_raises_oserror() -> None:
    """Nothing listening is an OSError, which the group's waits treat as not yet."""
    with pytest.raises(OSError):
        redis_command(closed_port(), "PING")
