"""RedisOptions accepts what redis-py can connect to, refuses the rest, and maps to pool kwargs."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from opa_redis_common import RedisOptions, pool_kwargs
from opa_redis_common.cluster import node_url, startup_nodes


def refusal(**opts: Any) -> str:
    """What refusing *opts* says, as opa reports it: each option with its problem, no input."""
    with pytest.raises(ValidationError) as caught:
        RedisOptions.model_validate(opts)
    errors = caught.value.errors(include_input=False, include_url=False)
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://cache",
        "redis://user:secret@cache:6380/15",
        "rediss://cache.example.org:6380",
        "redis://[::1]:6379/1",
        "unix:///run/redis/redis.sock?db=2",
    ],
)
def test_redis_urls_are_accepted(url: str) -> None:
    """redis://, rediss:// and unix:// URLs that redis-py can use are accepted."""
    assert url == RedisOptions(URL=url).URL


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://cache:6379/0", "redis://, rediss:// or unix://"),
        ("cache:6379", "redis://, rediss:// or unix://"),
        ("redis:///0", "must name a host"),
        ("unix://", "socket's path"),
        ("redis://cache:port/0", "port must be a number"),
        ("redis://cache:6379/zero", "database number"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, problem: str) -> None:
    """A URL redis-py cannot use is refused, and the message says what is wrong with it."""
    message = refusal(URL=url)
    assert "URL" in message
    assert problem in message


def test_refusing_a_url_never_repeats_its_password() -> None:
    """The message for a bad URL leaves out the URL, whose password would leak."""
    assert "hunter2" not in refusal(URL="http://user:hunter2@cache:6379/0")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("MAX_CONNECTIONS", 0),
        ("MAX_CONNECTIONS", -1),
        ("CONNECT_TIMEOUT", 0),
        ("SOCKET_TIMEOUT", -2.5),
        ("SOCKET_TIMEOUT", "soon"),
        ("HEALTH_CHECK_INTERVAL", -1),
        ("HEALTH_CHECK_INTERVAL", 0.0005),
        ("RETRIES", -1),
        ("RETRY_BACKOFF_BASE", -0.1),
        ("CLIENT_NAME", "two words"),
        ("CLIENT_NAME", ""),
    ],
)
def test_out_of_range_values_name_their_option(option: str, value: Any) -> None:
    """A value out of its option's range is refused, and the message names the option."""
    assert option in refusal(URL="redis://cache", **{option: value})


def test_unknown_options_are_refused() -> None:
    """An option the drivers do not know (a typo, say) is refused by name, not ignored."""
    assert "POOL_SIZE" in refusal(URL="redis://cache", POOL_SIZE=10)


def test_backoff_cap_below_base_is_refused() -> None:
    """A backoff cap below its base would never back off as configured, so it is refused."""
    message = refusal(URL="redis://cache", RETRY_BACKOFF_BASE=2, RETRY_BACKOFF_CAP=1)
    assert "RETRY_BACKOFF_CAP" in message


def test_pool_kwargs_carry_every_option_but_url_and_retry() -> None:
    """pool_kwargs passes each option to redis-py under redis-py's own name."""
    options = RedisOptions(
        URL="redis://cache",
        MAX_CONNECTIONS=7,
        CONNECT_TIMEOUT=1.5,
        SOCKET_TIMEOUT=2.5,
        HEALTH_CHECK_INTERVAL=0,
        DECODE_RESPONSES=True,
        CLIENT_NAME=None,
    )
    assert pool_kwargs(options) == {
        "max_connections": 7,
        "timeout": 2.5,
        "socket_connect_timeout": 1.5,
        "socket_timeout": 2.5,
        "health_check_interval": 0,
        "decode_responses": True,
        "client_name": None,
    }


def test_defaults_bound_every_wait() -> None:
    """With only a URL, connecting, replies and the pool all have a bound of a few seconds."""
    kwargs = pool_kwargs(RedisOptions(URL="redis://cache"))
    for name in ("timeout", "socket_connect_timeout", "socket_timeout"):
        assert 0 < kwargs[name] <= 10, name
    assert kwargs["max_connections"] > 0


def test_importing_does_not_import_redis() -> None:
    """The shared package never imports redis: each driver brings its own client."""
    code = "import sys, opa_redis_common; print('redis' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    "url",
    [
        "redis://cache",
        "redis://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002",
        "rediss://user:secret@node1:7000,node2/0",
        "redis://[::1]:7000,[::1]:7001",
    ],
)
def test_cluster_urls_are_accepted(url: str) -> None:
    """With CLUSTER, a redis:// or rediss:// URL of one or more startup nodes is accepted."""
    assert RedisOptions(URL=url, CLUSTER=True).CLUSTER


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("unix:///run/redis.sock", "redis:// or rediss://"),
        ("redis://node1:7000/1", "database 0 only"),
        ("redis://node1:7000,node2:port", "port must be a number"),
        ("redis://node1:7000,node2:70000", "port must be a number"),
        ("redis://node1:7000,", "must name a host"),
        ("redis://node1:7000,:7001", "must name a host"),
        ("redis+sentinel://:pw@s1,s2/mymaster/0", "Sentinel deployment, which is no Redis Cluster"),
    ],
)
def test_urls_no_cluster_can_have_are_refused_with_the_reason(url: str, problem: str) -> None:
    """With CLUSTER, a URL that cannot name a cluster's nodes is refused, saying why."""
    message = refusal(URL=url, CLUSTER=True)
    assert "CLUSTER" in message
    assert problem in message


def test_several_hosts_without_cluster_are_refused() -> None:
    """A URL listing several hosts without CLUSTER is refused, and the message says to set it."""
    message = refusal(URL="redis://node1:7000,node2:7001")
    assert "CLUSTER: true" in message


def test_refusing_a_cluster_url_never_repeats_its_password() -> None:
    """The message for a bad cluster URL leaves out the URL, whose password would leak."""
    assert "hunter2" not in refusal(URL="redis://u:hunter2@node1:7000/3", CLUSTER=True)
    assert "hunter2" not in refusal(URL="redis://u:hunter2@node1:7000,node2:7001")
    assert "hunter2" not in refusal(URL="redis+sentinel://:hunter2@s1/mymaster", CLUSTER=True)


def test_cluster_is_off_by_default() -> None:
    """Without CLUSTER, a URL names one server, as before."""
    assert RedisOptions(URL="redis://cache").CLUSTER is False


def test_startup_nodes_are_read_from_the_url() -> None:
    """Each host of a cluster URL is a startup node, on 6379 when it names no port."""
    url = "rediss://user:pw@node1:7000,node2,[::1]:7002/0"
    assert startup_nodes(url) == [("node1", 7000), ("node2", 6379), ("::1", 7002)]


def test_one_node_url_keeps_the_login_and_the_query() -> None:
    """node_url names one node and keeps what every connection needs: login, TLS, query."""
    url = "rediss://user:pw@node1:7000,node2:7001/0?ssl_cert_reqs=none"
    assert node_url(url, "node2", 7001) == "rediss://user:pw@node2:7001/0?ssl_cert_reqs=none"
    assert node_url("redis://a,b", "::1", 7000) == "redis://[::1]:7000"
