"""How ``OPTS`` name a Redis Cluster: ``CLUSTER: true``, and a URL of one or more startup nodes.

``redis://[user:password@]host:port[,host:port,...][/0]`` (``rediss://`` for TLS). redis-py's
cluster clients take a plain ``redis://`` URL of one node and find the others themselves, so
opa invents no scheme of its own; more startup nodes follow the first with commas, as in a
MongoDB seed list, and ``LOAD: auto`` probes them all, going on when any answers. A cluster
has database 0 only, and its nodes are TCP addresses, so a ``unix://`` URL names none.

Nothing here imports redis: the drivers bring the client library.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

CLUSTER_SCHEMES = ("redis", "rediss")
DEFAULT_PORT = 6379


def _hosts_part(url: str) -> str:
    """The URL's ``host:port[,host:port...]``, after any ``user:password@``."""
    return urlsplit(url).netloc.rpartition("@")[2]


def names_several_hosts(url: str) -> bool:
    """True when *url* lists more than one host (a cluster's startup nodes)."""
    return "," in _hosts_part(url)


def _node(text: str) -> tuple[str, int]:
    """``host[:port]`` or ``[v6]:port`` as (host, port); ValueError naming what is wrong."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else rest
    else:
        host, _, port = text.partition(":")
    if not host:
        raise ValueError("each startup node must name a host: redis://a:7000,b:7001")
    if not port:
        return host, DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("each startup node's port must be a number from 1 to 65535")
    return host, int(port)


def startup_nodes(url: str) -> list[tuple[str, int]]:
    """The (host, port) of each node *url* lists; a node without a port is on 6379."""
    return [_node(text) for text in _hosts_part(url).split(",")]


def node_url(url: str, host: str, port: int) -> str:
    """*url* with its hosts replaced by the one node *host*:*port*: its login, TLS and query
    options kept, for a client library that reads one node's URL."""
    parts = urlsplit(url)
    login, at, _ = parts.netloc.rpartition("@")
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=f"{login}{at}{address}"))


def check_cluster_url(url: str, cluster: bool) -> None:
    """Raise ValueError unless *url* suits ``CLUSTER`` being *cluster*.

    The messages never repeat the URL: it may hold a password.
    """
    if not cluster:
        # Another scheme may list hosts of its own kind (Sentinels, say): not judged here.
        if urlsplit(url).scheme in CLUSTER_SCHEMES and names_several_hosts(url):
            raise ValueError(
                "the URL names several hosts, which only a Redis Cluster's startup nodes may: "
                "set CLUSTER: true, or name one host"
            )
        return
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ValueError(
            "a Redis Cluster's nodes are TCP addresses: its URL starts with redis:// or "
            "rediss://, e.g. redis://node1:7000,node2:7001"
        )
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError("a Redis Cluster has database 0 only: end its URL with /0 or no path")
    startup_nodes(url)
