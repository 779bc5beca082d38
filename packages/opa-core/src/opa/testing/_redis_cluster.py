"""A private Redis Cluster for tests: real redis-server processes, one per master.

:class:`RedisClusterServers` starts each master as a :class:`RedisServer` in cluster mode, on
a port of its own (retried on another when it, or its cluster bus port, is taken), introduces
them to each other (``CLUSTER MEET``), shares the 16384 hash slots out among them (``CLUSTER
ADDSLOTS``) and waits until every node says ``cluster_state:ok``. A test may then kill one
master and start it again on the same port, where its ``nodes.conf`` gives it back its
identity and slots, or pause it as a hung host.

There are no replicas: a master that is down takes its slots with it until it is back. The
nodes run with ``cluster-require-full-coverage no``, so the other masters go on serving their
own slots meanwhile (with Redis's default, the whole cluster stops once one master is marked
failed), and with a short ``cluster-node-timeout``, so a failure and a recovery are noticed
within a few seconds.

With ``proxied=True`` each node sits behind a :class:`TcpProxy` and announces the proxy's
port. A cluster client learns every node's address from the cluster, so it then goes
through the proxies, and :class:`ProxyGroup` drops, silences or restores them all at once:
an outage of the whole cluster, as one ``TcpProxy`` stages one of a single server.

Only the standard library is imported: the few commands go through the kit's own RESP
helper (``_resp``).
"""

from __future__ import annotations

import time
from itertools import pairwise

from opa.testing._closing import Closing
from opa.testing._ports import (
    LOCALHOST,
    PROBE_TIMEOUT,
    START_TIMEOUT,
    ServiceUnavailable,
    on_free_port,
)
from opa.testing._proxy import TcpProxy
from opa.testing._resp import Reply, ReplyError, redis_command
from opa.testing._services import RedisServer

HASH_SLOTS = 16384
BUS_PORT_OFFSET = 10000
"""A node's cluster bus listens on its port plus this (Redis's rule before ``cluster-port``)."""
NODE_TIMEOUT_MS = 1000
COMMAND_TIMEOUT = 5.0
CLUSTER_ARGS = [
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    str(NODE_TIMEOUT_MS),
    "--cluster-require-full-coverage",
    "no",
    "--cluster-announce-ip",
    LOCALHOST,
]


def node_command(port: int, *args: str) -> Reply:
    """Send one command to the node on *port*; its reply.

    An error reply, or a node that does not answer, raises :class:`ServiceUnavailable`.
    """
    try:
        return redis_command(port, *args, timeout=COMMAND_TIMEOUT)
    except (OSError, ReplyError) as error:
        message = f"the node on port {port} did not answer {args[0]}: {error}"
        raise ServiceUnavailable(message) from error


def slot_ranges(masters: int) -> list[range]:
    """The hash slots of each of *masters* masters: contiguous and as even as they come."""
    bounds = [index * HASH_SLOTS // masters for index in range(masters + 1)]
    return [range(low, high) for low, high in pairwise(bounds)]


class ProxyGroup:
    """The proxies in front of every node of a cluster, acted on together, as one TcpProxy."""

    def __init__(self, proxies: list[TcpProxy]) -> None:
        self.proxies = proxies

    @property
    def closed(self) -> bool:
        return any(proxy.closed for proxy in self.proxies)

    def drop(self) -> None:
        """Every node's connections closed, and each new one at once, until :meth:`restore`."""
        for proxy in self.proxies:
            proxy.drop()

    def black_hole(self) -> None:
        """No node answers, though each accepts connections, until :meth:`restore`."""
        for proxy in self.proxies:
            proxy.black_hole()

    def restore(self) -> None:
        """Every node reachable again."""
        for proxy in self.proxies:
            proxy.restore()

    def close(self) -> None:
        """Close the proxies (the nodes behind them keep running)."""
        for proxy in self.proxies:
            proxy.close()


class RedisClusterServers(Closing):
    """A private Redis Cluster of *masters* masters (no replicas), started by ``start()``.

    *args* are added to each redis-server's command line. ``url`` names every node, for a
    client's ``CLUSTER: true``; ``kill_master(i)`` and ``start_master(i)`` stop a master
    (SIGKILL, as a crash) and bring it back on the same port, ``pause_master(i)`` and
    ``resume_master(i)`` stall it (SIGSTOP, SIGCONT). ``close()`` stops everything.
    """

    def __init__(
        self, masters: int = 3, *, proxied: bool = False, args: list[str] | None = None
    ) -> None:
        if masters < 1:
            raise ValueError(f"a cluster needs at least one master, not {masters}")
        self.masters = masters
        self.args = list(args or [])
        self.proxied = proxied
        self.servers: list[RedisServer] = []
        self.proxies = ProxyGroup([])

    def start(self) -> None:
        """Start the masters, form the cluster and wait until every node says it is ok."""
        try:
            for _ in range(self.masters):
                on_free_port(self._start_node, "redis-server in cluster mode")
            for server in self.servers[1:]:
                node_command(self.servers[0].port, "CLUSTER", "MEET", LOCALHOST, str(server.port))
            for server, slots in zip(self.servers, slot_ranges(self.masters), strict=True):
                node_command(server.port, "CLUSTER", "ADDSLOTS", *map(str, slots))
            self.wait_until_ok()
        except BaseException:
            self.close()
            raise

    def _start_node(self, port: int) -> None:
        args = [*CLUSTER_ARGS, *self.args]
        proxy = TcpProxy(LOCALHOST, port) if self.proxied else None
        if proxy is not None:
            announced = ["--cluster-announce-port", str(proxy.port)]
            args += [*announced, "--cluster-announce-bus-port", str(port + BUS_PORT_OFFSET)]
        server = RedisServer(port, args)
        try:
            server.start()
        except BaseException:
            server.close()
            if proxy is not None:
                proxy.close()
            raise
        self.servers.append(server)
        if proxy is not None:
            self.proxies.proxies.append(proxy)

    @property
    def ports(self) -> list[int]:
        """Each master's port as the cluster announces it: its proxy's when proxied."""
        if self.proxied:
            return [proxy.port for proxy in self.proxies.proxies]
        return [server.port for server in self.servers]

    @property
    def url(self) -> str:
        """``redis://`` naming every master, the startup nodes of ``CLUSTER: true``."""
        return "redis://" + ",".join(f"{LOCALHOST}:{port}" for port in self.ports)

    def master_of_slot(self, slot: int) -> int:
        """The index of the master that serves hash slot *slot*."""
        for index, slots in enumerate(slot_ranges(self.masters)):
            if slot in slots:
                return index
        raise ValueError(f"{slot} is no hash slot (0 to {HASH_SLOTS - 1})")

    def master_of_key(self, key: str) -> int:
        """The index of the master that holds *key*, as a running node computes its slot."""
        running = next(server for server in self.servers if server.running)
        slot = node_command(running.port, "CLUSTER", "KEYSLOT", key)
        assert isinstance(slot, int)
        return self.master_of_slot(slot)

    def kill_master(self, index: int) -> None:
        """Kill master *index* at once (SIGKILL): its port refuses connections."""
        self.servers[index].kill()

    def start_master(self, index: int) -> None:
        """Start master *index* again on its port, and wait until the cluster is whole."""
        self.servers[index].start()
        self.wait_until_ok()

    def pause_master(self, index: int) -> None:
        """Stall master *index*: it accepts connections and answers nothing."""
        self.servers[index].pause()

    def resume_master(self, index: int) -> None:
        self.servers[index].resume()

    def wait_until_ok(self) -> None:
        """Wait, bounded, until every node is up, says ``cluster_state:ok``, knows all the
        others, and sees none of them failing."""
        deadline = time.monotonic() + 2 * START_TIMEOUT
        problem = "not asked yet"
        while time.monotonic() < deadline:
            problem = self._problem() or ""
            if not problem:
                return
            time.sleep(PROBE_TIMEOUT / 5)
        raise ServiceUnavailable(
            f"the Redis Cluster did not come together within {2 * START_TIMEOUT:.0f}s: {problem}"
        )

    def _problem(self) -> str | None:
        """What keeps the cluster from being whole, or None when nothing does."""
        for server in self.servers:
            if not server.running:
                return f"the master on port {server.port} is not running"
            try:
                info = str(node_command(server.port, "CLUSTER", "INFO"))
                nodes = str(node_command(server.port, "CLUSTER", "NODES"))
            except ServiceUnavailable as error:
                return str(error)
            fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
            node = f"the node on port {server.port}"
            if fields.get("cluster_state") != "ok":
                return f"{node} says cluster_state:{fields.get('cluster_state')}"
            if fields.get("cluster_known_nodes") != str(self.masters):
                return f"{node} knows {fields.get('cluster_known_nodes')} nodes"
            for line in nodes.splitlines():
                flags = line.split()[2].split(",")
                if "fail" in flags or "fail?" in flags:
                    return f"{node} sees a node failing: {line}"
        return None

    def close(self) -> None:
        """Stop every master, close the proxies and remove the nodes' folders."""
        self.proxies.close()
        for server in self.servers:
            server.close()
