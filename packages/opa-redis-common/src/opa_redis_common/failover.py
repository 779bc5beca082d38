"""A Sentinel fail-over under load, run and measured (test kit; needs the ``testing`` extra).

An app with one component on the deployment serves two counters: ``/count`` (INCR) and
``/count-acked`` (INCR, then WAIT for the replica, in one pipeline); each also says which
server answered. Threads request them without pause; the master is killed; every request
is recorded (when it started and ended, its status, the value, the server, WAIT's count)
until the app has served a while from the promoted replica. :class:`FailoverRun` holds the
record, says what it shows, and checks what Redis and opa promise.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from fastapi.testclient import TestClient

from opa.testing import LOCALHOST, RedisSentinelGroup, build_app, wait_for

KEYS = {"/count": "opa-failover:plain", "/count-acked": "opa-failover:acked"}
THREADS_PER_ROUTE = 4
WARM_UP = 100
"""200s before the master is killed."""
AFTER = 100
"""200s from the promoted replica before the run ends (at least a tenth on each route)."""
WAIT_MS = 100
"""WAIT's bound: past it the write counts as unconfirmed (after the fail-over there is no
replica left to confirm it)."""
HANG = 10.0
"""A request taking this long is a hang: the driver's own bounds (1 s timeouts, 2 retries
of a failed connection) end every request well before it."""
SETTLE = 30.0
"""How long each stage (warm-up, promotion, the first 200s after it) may take."""
LAGGED = 20
"""With a lagging replica: plain INCRs the master acknowledges while its replica hears
nothing, before it is killed."""

ROUTES = """
from opa import get_instance, get_router

router = get_router()


def _pipeline(key: str, acked: bool):
    pipe = get_instance("cache").pipeline(transaction=False)
    pipe.incr(key)
    if acked:
        pipe.wait(1, {wait_ms})
    pipe.config_get("port")
    return pipe


def _answer(replies: list) -> dict:
    return {{
        "value": replies[0],
        "acked": replies[1] if len(replies) == 3 else None,
        "port": int(next(iter(replies[-1].values()))),
    }}


@router.get("/count")
{define} count() -> dict:
    return _answer({wait}_pipeline({plain!r}, False).execute())


@router.get("/count-acked")
{define} count_acked() -> dict:
    return _answer({wait}_pipeline({acked!r}, True).execute())
"""


@dataclass(frozen=True)
class Request:
    """One request of the run, as its client saw it."""

    path: str
    started: float
    ended: float
    status: int
    body: dict[str, Any] | None

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def served_by(self, port: int) -> bool:
        return self.status == 200 and self.body is not None and self.body["port"] == port


@dataclass
class FailoverRun:
    """What one fail-over under load did, in the time of ``time.monotonic()``."""

    old_port: int
    new_port: int
    crashed: float = 0.0
    promoted: float = 0.0
    frozen: dict[str, int] = field(default_factory=dict)
    """Each counter on the replica once the master was gone: what it was promoted with."""
    final: dict[str, int] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def first_served_again(self) -> float:
        """When the first request answered by the promoted replica ended."""
        return min(r.ended for r in self.requests if r.served_by(self.new_port))

    def answered(self, path: str, port: int, *, acked: bool = False) -> list[int]:
        """The values *path*'s 200s from the server on *port* reported (only those WAIT
        confirmed on a replica, when *acked*)."""
        return [
            r.body["value"]
            for r in self.requests
            if r.path == path
            and r.served_by(port)
            and r.body is not None
            and (not acked or (r.body["acked"] or 0) >= 1)
        ]

    def lost(self, path: str, *, acked: bool = False) -> list[int]:
        """Values the old master acknowledged (and WAIT confirmed, when *acked*) that the
        promoted replica never had: asynchronous replication's loss."""
        frozen = self.frozen[KEYS[path]]
        return [v for v in self.answered(path, self.old_port, acked=acked) if v > frozen]

    def summary(self) -> str:
        """The figures, one line."""
        statuses = [r.status for r in self.requests]
        refused = [r.seconds for r in self.requests if r.status == 503]
        plain = self.answered("/count", self.old_port)
        confirmed = self.answered("/count-acked", self.old_port, acked=True)
        return (
            f"master killed; sentinels named the replica after "
            f"{self.promoted - self.crashed:.2f} s; first 200 from it after "
            f"{self.first_served_again() - self.crashed:.2f} s; {len(statuses)} requests: "
            f"{statuses.count(200)} x 200, {len(refused)} x 503 (slowest 503 "
            f"{max(refused, default=0.0):.3f} s); acknowledged writes lost: "
            f"{len(self.lost('/count'))} of {len(plain)} plain INCRs, "
            f"{len(self.lost('/count-acked', acked=True))} of {len(confirmed)} confirmed by WAIT"
        )

    def check(self) -> None:
        """Fail unless the run kept what Redis and opa promise (see the docstring of
        ``SentinelDriverSuite.test_a_failover_under_load_costs_fast_503s_and_no_restart``)."""
        others = sorted({r.status for r in self.requests} - {200, 503})
        assert not others, f"requests answered {others}, not only 200 or 503"
        slowest = max(self.requests, key=lambda r: r.seconds)
        assert slowest.seconds < HANG, f"a request took {slowest.seconds:.1f} s: {slowest}"
        back = self.first_served_again()
        late = [r for r in self.requests if r.started > back and r.status != 200]
        assert not late, f"{len(late)} requests failed after the replica served: {late[:3]}"
        for path, key in KEYS.items():
            before = self.answered(path, self.old_port)
            after = self.answered(path, self.new_port)
            assert after and min(after) > self.frozen[key], f"{path}: {after[:3]}"
            # Each server gave each value once; the promoted replica, counting on from what
            # it had, gives again only values of writes it never had.
            assert len(set(before)) == len(before) and len(set(after)) == len(after), path
            assert set(before) & set(after) <= set(self.lost(path)), path
            # Every 200 from the replica added one; failed requests may have added more.
            assert self.final[key] >= self.frozen[key] + len(after), (path, self.final)
        assert not self.lost("/count-acked", acked=True), "a write WAIT confirmed was lost"


def run_failover(
    group: RedisSentinelGroup,
    driver_name: str,
    is_async: bool,
    opts: dict[str, Any],
    folder: Path,
    *,
    lagging: bool = False,
) -> FailoverRun:
    """Serve the counters through *driver_name* on *group*, kill its master under load, and
    record the run until the promoted replica has answered :data:`AFTER` requests.

    With *lagging* (*group* made with ``replication_proxied``), the replica first stops
    hearing from the master until :data:`LAGGED` more plain INCRs are acknowledged: the
    writes asynchronous replication loses at a fail-over, made to happen.
    """
    (folder / "failover_routes.py").write_text(
        ROUTES.format(
            wait_ms=WAIT_MS,
            define="async def" if is_async else "def",
            wait="await " if is_async else "",
            plain=KEYS["/count"],
            acked=KEYS["/count-acked"],
        )
    )
    component = {"LOAD": "yes", "DRIVER": driver_name, "OPTS": {"URL": group.url, **opts}}
    app = build_app({"PLUGIN_PATHS": [str(folder)], "OPTIONAL_COMPONENTS": {"cache": component}})
    replica = group.replicas[0]
    run = FailoverRun(old_port=group.master.port, new_port=replica.port)
    stop = threading.Event()
    with TestClient(app) as client:
        threads = [
            threading.Thread(target=_requests, args=(client, path, stop, run.requests))
            for path in KEYS
            for _ in range(THREADS_PER_ROUTE)
        ]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: _served(run, run.old_port) >= WARM_UP, SETTLE, "warm-up")
            link = group.replication_proxy
            if lagging:
                assert link is not None, "a lagging replica needs replication_proxied"
                link.black_hole()
                behind = _served(run, run.old_port, "/count") + LAGGED
                wait_for(lambda: _served(run, run.old_port, "/count") >= behind, SETTLE, "lag")
            group.crash_master()
            run.crashed = time.monotonic()
            if link is not None:
                link.restore()  # closes the held link: the replica sees its master gone
            run.frozen = _frozen_replica(replica.port, group.password)
            promoted = wait_for(lambda: _promoted(group, replica.port), SETTLE, "promotion", 0.01)
            run.promoted = promoted
            wait_for(lambda: _served_again(run), SETTLE, "200s from the promoted replica")
        finally:
            stop.set()
            for thread in threads:
                thread.join(HANG * 2)
        with _admin(replica.port, group.password) as admin:
            run.final = {key: int(admin.get(key) or 0) for key in KEYS.values()}
    return run


def _requests(client: TestClient, path: str, stop: threading.Event, out: list[Request]) -> None:
    while not stop.is_set():
        started = time.monotonic()
        response = client.get(path)
        body = response.json() if response.status_code == 200 else None
        out.append(Request(path, started, time.monotonic(), response.status_code, body))


def _served(run: FailoverRun, port: int, path: str | None = None) -> int:
    return sum(1 for r in list(run.requests) if r.served_by(port) and path in (None, r.path))


def _served_again(run: FailoverRun) -> bool:
    enough = AFTER // 10
    each = all(_served(run, run.new_port, path) >= enough for path in KEYS)
    return each and _served(run, run.new_port) >= AFTER


def _promoted(group: RedisSentinelGroup, port: int) -> float | None:
    """The time the first sentinel that answers names the replica as the master."""
    return time.monotonic() if group.master_address() == (LOCALHOST, port) else None


def _admin(port: int, password: str | None) -> redis.Redis:
    return redis.Redis(host=LOCALHOST, port=port, password=password, socket_timeout=5)


def _frozen_replica(port: int, password: str | None) -> dict[str, int]:
    """The counters on the replica once it has read all its dead master sent, before any
    promotion: the values it will be promoted with."""
    with _admin(port, password) as admin:

        def link_down() -> bool:
            status: object = admin.info("replication").get("master_link_status")
            return status == "down"

        wait_for(link_down, SETTLE, "the replica to see its master gone", every=0.01)
        values = {key: int(admin.get(key) or 0) for key in KEYS.values()}
        role = admin.execute_command("ROLE")[0]
        assert role in (b"slave", "slave"), f"the replica was promoted before it was read: {role}"
    return values
