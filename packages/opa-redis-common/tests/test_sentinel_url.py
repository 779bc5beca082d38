"""The redis+sentinel:// form of URL: what it names, what it refuses, what redis-py gets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from opa_redis_common import REDIS_PORTS, RedisOptions
from opa_redis_common.sentinel import (
    SentinelURL,
    is_sentinel_url,
    parse_sentinel_url,
    sentinel_kwargs,
    server_kwargs,
)


def refusal(url: str) -> str:
    """What refusing URL says, as opa reports it (no input echoed)."""
    with pytest.raises(ValidationError) as caught:
        RedisOptions(URL=url)
    errors = caught.value.errors(include_input=False, include_url=False)
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)


def test_the_url_names_sentinels_service_database_and_both_logins() -> None:
    """Hosts are the sentinels, the path the service and database, the user-info the
    servers' login and the query the sentinels' login, percent-decoded."""
    url = (
        "redis+sentinel://app:p%40ss@s1:26380,s2,[::1]:26381/my%2Dmaster/3"
        "?sentinel_username=watch&sentinel_password=s%26cret"
    )
    assert parse_sentinel_url(url) == SentinelURL(
        sentinels=(("s1", 26380), ("s2", 26379), ("::1", 26381)),
        service="my-master",
        db=3,
        username="app",
        password="p@ss",
        sentinel_username="watch",
        sentinel_password="s&cret",
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+sentinel://s1/mymaster", ("mymaster", 0, None, None)),
        ("redis+sentinel://s1/mymaster/", ("mymaster", 0, None, None)),
        ("redis+sentinel://:secret@s1/mymaster/2", ("mymaster", 2, None, "secret")),
        ("redis+sentinel://user@s1/mymaster", ("mymaster", 0, "user", None)),
        ("REDIS+SENTINEL://s1/mymaster", ("mymaster", 0, None, None)),
    ],
)
def test_optional_parts_have_defaults(url: str, expected: tuple[object, ...]) -> None:
    """The database defaults to 0; the login is optional; a user-info without a colon is a
    user name, as redis-py reads it; the scheme's case does not matter."""
    parsed = parse_sentinel_url(url)
    assert (parsed.service, parsed.db, parsed.username, parsed.password) == expected
    assert url == RedisOptions(URL=url).URL


def test_passwords_stay_out_of_the_repr() -> None:
    """The parsed form can be logged: neither password is in its repr."""
    parsed = parse_sentinel_url("redis+sentinel://:hunter2@s1/m?sentinel_password=swordfish")
    assert "hunter2" not in repr(parsed)
    assert "swordfish" not in repr(parsed)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://s1:26379", "must name the service"),
        ("redis+sentinel://s1:26379/", "must name the service"),
        ("redis+sentinel://s1/m/0/extra", "/service or /service/db"),
        ("redis+sentinel://s1/m/zero", "database after the service must be a number"),
        ("redis+sentinel://s1/%20m", "must not be empty or hold spaces"),
        ("redis+sentinel://s1:0/m", "port must be a number from 1 to 65535"),
        ("redis+sentinel://s1:65536/m", "port must be a number from 1 to 65535"),
        ("redis+sentinel://s1:port/m", "port must be a number from 1 to 65535"),
        ("redis+sentinel://s1:\u00b2/m", "port must be a number from 1 to 65535"),
        ("redis+sentinel://s1/m/\u00b2", "database after the service must be a number"),
        ("redis+sentinel://s1,,s2/m", "every sentinel must name a host"),
        ("redis+sentinel:///m", "every sentinel must name a host"),
        ("redis+sentinel://[::1]x/m", "[address]:port"),
        ("redis+sentinel://[::1/m", "[address]:port"),
        ("redis+sentinel://s1/m?db=2", "db is not a query parameter"),
        ("redis+sentinel://s1/m?sentinel_password=a&sentinel_password=b", "given twice"),
        ("redis+sentinel://s1/m#frag", "no #fragment"),
        ("rediss+sentinel://s1/m", "not supported yet"),
        ("sentinel://s1:26379", "opa writes a Sentinel URL redis+sentinel://"),
        ("redis-sentinel://s1:26379", "opa writes a Sentinel URL redis+sentinel://"),
    ],
)
def test_bad_sentinel_urls_are_refused_with_the_reason(url: str, problem: str) -> None:
    """Each mistake in a Sentinel URL is refused as an error of URL saying what is wrong."""
    message = refusal(url)
    assert message.startswith("URL:"), message
    assert problem in message, message


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://user:hunter2@s1:0/m",
        "redis+sentinel://user:hunter2@s1/m?password=hunter2",
        "redis+sentinel://s1/m?sentinel_password=hunter2&sentinel_password=hunter2",
        "redis+sentinel://s1/m?sentinel_password=hunter2&x=1",
        "rediss+sentinel://:hunter2@s1/m",
    ],
)
def test_refusing_a_sentinel_url_never_repeats_a_password(url: str) -> None:
    """No message about a bad Sentinel URL holds a password, wherever it sits."""
    assert "hunter2" not in refusal(url)


def test_other_tools_sentinel_schemes_are_read_as_sentinel_urls() -> None:
    """kombu's sentinel://, Lettuce's redis-sentinel:// and rediss+sentinel:// are taken for
    Sentinel URLs, so their error says how opa writes one; redis:// is not."""
    for url in ("sentinel://s1", "redis-sentinel://s1", "rediss+sentinel://s1/m"):
        assert is_sentinel_url(url)
    for url in ("redis://s1", "rediss://s1", "unix:///run/redis.sock", "redis+sentinel"):
        assert not is_sentinel_url(url)


def test_sentinels_default_to_port_26379_for_load_auto() -> None:
    """REDIS_PORTS, the drivers' default_ports, gives redis+sentinel:// port 26379."""
    assert REDIS_PORTS["redis+sentinel"] == 26379
    assert REDIS_PORTS["redis"] == 6379


def test_each_login_goes_to_its_own_connections() -> None:
    """The servers' login and database go to the server connections, the sentinels' login
    and the timeouts to the sentinel connections, and neither gets the other's password."""
    parsed = parse_sentinel_url(
        "redis+sentinel://app:server-pw@s1/m/4?sentinel_username=w&sentinel_password=sentinel-pw"
    )
    assert server_kwargs(parsed) == {"db": 4, "username": "app", "password": "server-pw"}
    assert sentinel_kwargs(parsed, connect_timeout=1.5, timeout=2.5) == {
        "socket_connect_timeout": 1.5,
        "socket_timeout": 2.5,
        "username": "w",
        "password": "sentinel-pw",
    }
