"""``CLUSTER: true``: redis-py's asyncio ``RedisCluster`` as the instance, and its outages.

The cluster client keeps a connection pool per node and routes each command to the master
of its key's hash slot; opa's pool and watch (``pool.py``, ``watch.py``) stay with the
single-server client. So on a cluster, ``SOCKET_TIMEOUT`` is redis-py's own per command,
``MAX_CONNECTIONS`` bounds each node's connections (a command that finds them all busy
fails at once: redis-py has no blocking pool for a cluster), and ``RETRIES`` is how often
the client sends a command again after a connection error, each time after asking the
cluster where the slot now lives (which is how it follows a fail-over).

A dead master takes only its own slots: the errors of one node are told apart from the
whole cluster's (``is_one_node_outage``), so opa's breaker asks the cluster before it marks
the component down, and the other masters' keys go on being served.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    ConnectionError,
    RedisClusterException,
    SlotNotCoveredError,
    TimeoutError,
)

from opa_redis_common import RedisOptions, pool_kwargs
from opa_redis_common.cluster import node_url, startup_nodes


class TimeoutsNotRetriedCluster(RedisCluster):
    """redis-py's ``RedisCluster``, except that a command that timed out is not sent again.

    redis-py retries a timeout as it does a refused connection; on a node that stopped
    answering, each retry would wait ``SOCKET_TIMEOUT`` once more. As on one server, a
    timeout is not retried, so a silent master costs one ``SOCKET_TIMEOUT`` per command.
    """

    # redis-py types the attribute as its own tuple of four; this one has one fewer.
    ERRORS_ALLOW_RETRY = tuple(  # type: ignore[assignment]
        error for error in RedisCluster.ERRORS_ALLOW_RETRY if error is not TimeoutError
    )


def cluster_client(opts: RedisOptions) -> RedisCluster:
    """The asyncio cluster client for *opts*: every node of the URL a startup node, the URL's
    login, TLS and query options for every connection (the query wins, as in redis-py)."""
    nodes = startup_nodes(opts.URL)
    from_url: dict[str, Any] = dict(parse_url(node_url(opts.URL, *nodes[0])))
    for address in ("host", "port", "db", "path"):
        from_url.pop(address, None)
    if from_url.pop("connection_class", None) is SSLConnection:
        from_url["ssl"] = True
    settings = pool_kwargs(opts)
    del settings["timeout"]  # the wait for a free connection: a cluster's pools never wait
    backoff = ExponentialBackoff(cap=opts.RETRY_BACKOFF_CAP, base=opts.RETRY_BACKOFF_BASE)
    parameters = inspect.signature(RedisCluster.__init__).parameters
    if "connection_error_retry_attempts" in parameters:
        # redis-py 5: `retry` is each connection's own; the cluster's count is separate.
        retries: dict[str, Any] = {
            "cluster_error_retry_attempts": opts.RETRIES,
            "connection_error_retry_attempts": 0,
        }
    else:
        retries = {"retry": Retry(backoff, opts.RETRIES)}  # redis-py 6+: the cluster's count
    return TimeoutsNotRetriedCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        **settings | from_url | retries,
    )


async def cluster_answers(client: RedisCluster) -> None:
    """Return once one master says the cluster is ok; raise the last error when none does.

    This is the component's health: a cluster that serves its slots, or some of them, is up.
    The masters are asked at once, so one that hangs costs nothing while another answers,
    each on its own node's pool: through the client, redis-py 5 would answer one node's
    connection error by closing every node's connections, the other questions' included.
    """
    await client.initialize()
    asks = [asyncio.ensure_future(_says_ok(node)) for node in client.get_primaries()]
    try:
        failure: BaseException | None = None
        for ask in asyncio.as_completed(asks):
            try:
                await ask
            except Exception as error:
                failure = error
            else:
                return
        assert failure is not None
        raise failure
    finally:
        for ask in asks:
            ask.cancel()  # redis-py drops the connection of a command cut short


async def _says_ok(node: ClusterNode) -> None:
    info = await node.execute_command("CLUSTER INFO")
    if not isinstance(info, dict):  # a node without redis-py's parser for it
        text = info.decode() if isinstance(info, bytes) else str(info)
        info = dict(line.split(":", 1) for line in text.split() if ":" in line)
    state = info.get("cluster_state")
    if state != "ok":
        raise ClusterDownError(f"the node {node.name} says cluster_state:{state}")


OUTAGE_ERRORS = (ConnectionError, TimeoutError, ClusterError, RedisClusterException)
"""What a cluster client raises when a node or the cluster is gone, and some mistakes:
:func:`is_cluster_outage` tells them apart."""


def is_cluster_outage(error: Exception) -> bool:
    """True when *error* means a node, or the whole cluster, is gone, not a bad command.

    ``ClusterError`` is the cluster saying it is down (``CLUSTERDOWN``, ``MASTERDOWN``) or a
    slot that kept moving; ``RedisClusterException`` also carries mistakes (the keys of one
    command in several slots), so it counts only when a slot has no node, or no node could
    be reached.
    """
    if isinstance(error, ConnectionError | TimeoutError | ClusterError | SlotNotCoveredError):
        return True
    if isinstance(error, RedisClusterException):
        return _caused_by(error, (ConnectionError, TimeoutError))
    return False


def is_one_node_outage(error: Exception) -> bool:
    """True when *error* may be one node's alone (its connection refused, dropped or silent)
    while the other nodes serve their slots."""
    return isinstance(error, ConnectionError | TimeoutError)


def _caused_by(error: BaseException, kinds: tuple[type[Exception], ...]) -> bool:
    """True when an exception that led to *error* is one of *kinds*."""
    seen: set[int] = set()
    cause = error.__cause__ or error.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, kinds):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False
