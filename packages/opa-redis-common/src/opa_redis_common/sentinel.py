"""The ``redis+sentinel://`` form of ``URL``: read, checked, and turned into redis-py arguments.

One string names a whole Sentinel deployment::

    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]
        [?sentinel_username=...&sentinel_password=...]

The hosts are the sentinels (26379 when a port is left out), the path names the service
the sentinels watch and the database, the user-info is the login of the Redis servers, and
the query the login of the sentinels, when they want one. prefect-redis, docket and
Redis-Sentinel-Url read the same grammar, so one URL can configure them and opa alike.

Like :mod:`opa_redis_common.options`, nothing here imports redis, and no message repeats
the URL or any part of a login.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

if TYPE_CHECKING:
    from opa_redis_common.options import RedisOptions

SCHEME = "redis+sentinel"
SENTINEL_PORTS = {SCHEME: 26379}
"""The port a sentinel without one in the URL listens on: the drivers' ``default_ports``."""
QUERY_OPTIONS = ("sentinel_username", "sentinel_password")
EXAMPLE = "redis+sentinel://s1:26379,s2:26379,s3:26379/mymaster/0"


@dataclass(frozen=True)
class SentinelURL:
    """What a ``redis+sentinel://`` URL says; the passwords are left out of its repr."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)


# Schemes other tools use for Sentinel (TLS, kombu's, Lettuce's): read as meant for this
# form, so that the error says how opa writes it.
NEAR_MISSES = ("rediss+sentinel", "sentinel", "redis-sentinel")


def is_sentinel_url(url: str) -> bool:
    """True for a URL of the Sentinel form, or of a scheme other tools use for Sentinel
    (whose error then says how opa writes it)."""
    scheme, separator, _ = url.partition("://")
    return bool(separator) and (scheme.lower() == SCHEME or scheme.lower() in NEAR_MISSES)


def parse_sentinel_url(url: str) -> SentinelURL:
    """Read a ``redis+sentinel://`` URL; ValueError says what is wrong, never with the URL."""
    scheme = url.partition("://")[0].lower()
    if scheme == "rediss+sentinel":
        raise ValueError(
            "rediss+sentinel:// (TLS) is not supported yet; use redis+sentinel:// on a "
            "trusted network, or a single rediss:// server"
        )
    if scheme != SCHEME:
        raise ValueError(
            f"opa writes a Sentinel URL redis+sentinel://sentinels/service/db, e.g. {EXAMPLE}"
        )
    # Split by hand, as urlsplit would: newer Pythons refuse a host list holding [::1].
    rest, fragment, _ = url.partition("://")[2].partition("#")
    if fragment:
        raise ValueError("a Sentinel URL takes no #fragment; percent-encode a # in a password")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    user_info, at, hosts = netloc.rpartition("@")
    username, password = _login(user_info) if at else (None, None)
    service, db = _service_and_db(path)
    sentinel_username, sentinel_password = _sentinel_login(query)
    return SentinelURL(
        sentinels=tuple(_sentinel(host) for host in hosts.split(",")),
        service=service,
        db=db,
        username=username,
        password=password,
        sentinel_username=sentinel_username,
        sentinel_password=sentinel_password,
    )


def _login(user_info: str) -> tuple[str | None, str | None]:
    """User name and password, percent-decoded; as in redis-py, a user-info without a colon
    is a user name."""
    name, _, secret = user_info.partition(":")
    return unquote(name) or None, unquote(secret) or None


def _sentinel(host: str) -> tuple[str, int]:
    """One ``host[:port]`` (``[v6]:port`` too) of the host list."""
    if host.startswith("["):
        name, closed, rest = host[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError("an IPv6 sentinel is written [address]:port, e.g. [::1]:26379")
        port = rest[1:]
    else:
        name, _, port = host.partition(":")
    if not name:
        raise ValueError(
            "every sentinel must name a host; separate them with commas and no space, "
            f"e.g. {EXAMPLE}"
        )
    if not port:
        return name, SENTINEL_PORTS[SCHEME]
    if not port.isdecimal() or not 0 < int(port) < 65536:
        raise ValueError("a sentinel's port must be a number from 1 to 65535")
    return name, int(port)


def _service_and_db(path: str) -> tuple[str, int]:
    pieces = path.strip("/").split("/") if path.strip("/") else []
    if not pieces:
        raise ValueError(f"the path must name the service the sentinels watch, e.g. {EXAMPLE}")
    if len(pieces) > 2:
        raise ValueError("the path is /service or /service/db, nothing more")
    service = unquote(pieces[0])
    if not service or any(character.isspace() for character in service):
        raise ValueError("the service name must not be empty or hold spaces")
    if len(pieces) == 1 or not pieces[1]:
        return service, 0
    if not pieces[1].isdecimal():
        raise ValueError("the database after the service must be a number, e.g. /mymaster/0")
    return service, int(pieces[1])


def _sentinel_login(query: str) -> tuple[str | None, str | None]:
    """``sentinel_username`` and ``sentinel_password`` from the query, and nothing else."""
    found: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in QUERY_OPTIONS:
            shown = name if name.isidentifier() else "a parameter"
            raise ValueError(
                f"{shown} is not a query parameter of a Sentinel URL; it takes "
                f"{' and '.join(QUERY_OPTIONS)}, the other settings are OPTS of their own"
            )
        if name in found:
            raise ValueError(f"{name} is given twice")
        found[name] = value
    return found.get("sentinel_username") or None, found.get("sentinel_password") or None


def sentinel_kwargs(address: SentinelURL, connect_timeout: float, timeout: float) -> dict[str, Any]:
    """Connection arguments for the clients of the sentinels themselves (redis-py's
    ``Sentinel(sentinel_kwargs=...)``), without the retry object, which each driver adds.

    They get the timeouts and the sentinels' own login, nothing of the Redis servers': the
    two logins are separate in Redis.
    """
    return {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": timeout,
        "username": address.sentinel_username,
        "password": address.sentinel_password,
    }


class ShownByAddress:
    """Mixed into the client class of one sentinel (redis-py's sync or asyncio ``Redis``) so
    that it shows as its address: redis-py's "No master found" error lists each sentinel it
    asked with what went wrong, and would otherwise print every argument of its pool."""

    connection_pool: Any

    def __repr__(self) -> str:
        where = self.connection_pool.connection_kwargs
        return f"sentinel {where.get('host')}:{where.get('port')}"


def sentinel_manager(
    address: SentinelURL,
    opts: RedisOptions,
    classes: tuple[type[Any], type[ShownByAddress]],
    retry: Any,
) -> Any:
    """redis-py's ``Sentinel`` on the URL's sentinels, with the timeouts of *opts*: *classes*
    are the ``Sentinel`` class and the sentinels' client class of one side (sync or asyncio),
    *retry* that side's policy for the queries to the sentinels."""
    sentinel_class, client_class = classes
    timeouts = (opts.CONNECT_TIMEOUT, opts.SOCKET_TIMEOUT)
    kwargs = {**sentinel_kwargs(address, *timeouts), "retry": retry}
    manager = sentinel_class([], sentinel_kwargs=kwargs)
    manager.sentinels = [
        client_class(host=host, port=port, **kwargs)  # type: ignore[call-arg]
        for host, port in address.sentinels
    ]
    return manager


def server_kwargs(address: SentinelURL) -> dict[str, Any]:
    """The URL's part of the arguments for the connections to the Redis servers."""
    return {"db": address.db, "username": address.username, "password": address.password}
