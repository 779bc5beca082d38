"""``OPTS`` of the Redis drivers, and the redis-py pool arguments they become.

Both drivers (sync walrus, ``redis.asyncio``) build a redis-py blocking connection pool
from the same options, so the model and the mapping live here once. Nothing here imports
redis: the drivers bring the client library, and this package stays cheap to import.
"""

from __future__ import annotations

from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from opa_redis_common.cluster import check_cluster_url, names_several_hosts
from opa_redis_common.sentinel import SENTINEL_PORTS, is_sentinel_url, parse_sentinel_url

SCHEMES = ("redis", "rediss", "unix")

REDIS_PORTS = {"redis": 6379, "rediss": 6379, **SENTINEL_PORTS}
"""The port a URL of each scheme without one means: both drivers' ``default_ports``."""


def _check_url(url: str) -> None:
    """Raise ValueError unless *url* is one redis-py can connect to.

    The messages never repeat the URL: it may hold a password.
    """
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError("expected a URL starting with redis://, rediss:// or unix://")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(
                "a unix:// URL must name the socket's path, e.g. unix:///run/redis.sock"
            )
        return
    if names_several_hosts(url):
        return  # a Redis Cluster's startup nodes, checked with CLUSTER (cluster.py)
    if not parts.hostname:
        raise ValueError(
            f"a {parts.scheme}:// URL must name a host, e.g. {parts.scheme}://cache:6379/0"
        )
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise ValueError("the port must be a number from 0 to 65535") from None
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ValueError("the path must be a database number, e.g. /0")


class RedisOptions(BaseModel):
    """``OPTS`` of ``redis-walrus`` and ``redis-aioredis``; unknown keys are refused.

    Times are seconds. The defaults fail a request within a few seconds when Redis is
    gone, instead of redis-py's own (no timeouts at all, unbounded pools).
    """

    model_config = ConfigDict(extra="forbid")

    URL: str
    """``redis://[user:password@]host[:port][/db]``, ``rediss://`` (TLS), ``unix:///path``, or
    ``redis+sentinel://[user:password@]sentinel[:port][,...]/service[/db]`` (Redis Sentinel)."""
    MAX_CONNECTIONS: int = Field(default=50, gt=0, le=10_000)
    """Pool size. When all are busy a command waits for one, at most ``SOCKET_TIMEOUT``.
    At most 10,000: redis-py's sync pool reserves every slot up front."""
    CONNECT_TIMEOUT: float = Field(default=5.0, gt=0)
    SOCKET_TIMEOUT: float = Field(default=5.0, gt=0)
    """Bounds each reply, and the wait for a free pooled connection."""
    HEALTH_CHECK_INTERVAL: float = Field(default=30.0, ge=0)
    """PING a connection idle longer than this before using it; 0 turns the check off.
    Otherwise at least 1: below about a millisecond redis-py runs the check inside its
    connection handshake and fails against Redis before 7.2."""
    RETRIES: int = Field(default=3, ge=0)
    """Retries of a command whose connection failed; timeouts are not retried."""
    RETRY_BACKOFF_BASE: float = Field(default=0.05, ge=0)
    RETRY_BACKOFF_CAP: float = Field(default=1.0, ge=0)
    """The n-th retry (n = 1, 2, ...) first waits min(cap, base * 2**n)."""
    DECODE_RESPONSES: bool = False
    """True hands out ``str`` instead of ``bytes``."""
    CLIENT_NAME: str | None = Field(default="opa", min_length=1, pattern=r"^[!-~]+$")
    """Shown by CLIENT LIST on the server; no spaces. None sets no name."""
    CLUSTER: bool = Field(default=False, validate_default=True)
    """True: URL names one or more nodes of a Redis Cluster, ``redis://a:7000,b:7001``;
    the client finds the others. Only ``redis-aioredis`` takes a cluster."""

    @field_validator("URL")
    @classmethod
    def _url_is_redis(cls, url: str) -> str:
        if is_sentinel_url(url):
            parse_sentinel_url(url)
        else:
            _check_url(url)
        return url

    @field_validator("CLUSTER")
    @classmethod
    def _url_fits_cluster(cls, cluster: bool, info: ValidationInfo) -> bool:
        url = info.data.get("URL")  # absent when the URL itself was refused
        if isinstance(url, str) and cluster and is_sentinel_url(url):
            raise ValueError(
                "a redis+sentinel:// URL names a Sentinel deployment, which is no Redis "
                "Cluster: set CLUSTER: false, or give the cluster's nodes as redis://"
            )
        if isinstance(url, str):
            check_cluster_url(url, cluster)
        return cluster

    @field_validator("HEALTH_CHECK_INTERVAL")
    @classmethod
    def _off_or_at_least_a_second(cls, seconds: float) -> float:
        if 0 < seconds < 1:
            raise ValueError("must be 0 (no health check) or at least 1 second")
        return seconds

    @model_validator(mode="after")
    def _cap_covers_base(self) -> Self:
        if self.RETRY_BACKOFF_CAP < self.RETRY_BACKOFF_BASE:
            raise ValueError("RETRY_BACKOFF_CAP must not be less than RETRY_BACKOFF_BASE")
        return self


def pool_kwargs(options: RedisOptions) -> dict[str, Any]:
    """Keyword arguments for redis-py's ``BlockingConnectionPool.from_url``, sync or asyncio.

    The retry object is left to the driver: redis-py has one class for each side.
    """
    return {
        "max_connections": options.MAX_CONNECTIONS,
        "timeout": options.SOCKET_TIMEOUT,
        "socket_connect_timeout": options.CONNECT_TIMEOUT,
        "socket_timeout": options.SOCKET_TIMEOUT,
        "health_check_interval": options.HEALTH_CHECK_INTERVAL,
        "decode_responses": options.DECODE_RESPONSES,
        "client_name": options.CLIENT_NAME,
    }
