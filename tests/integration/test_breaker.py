"""Issue 13 item 8: a stalled Redis under load, with the component breaker on and off.

`opa run` serves examples/redis on a private redis-server, eight clients keep requesting both
counters, and the server is SIGSTOPped, then SIGCONTed. The bounds are generous (the machine
is shared); the figures printed (`pytest -s`) are what docs/reliability.md reports.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import quantiles

import httpx
import pytest
from faults import OpaRun, serve_redis_example

from opa.testing import LOCALHOST, RedisServer

ROUTES = ("/counter-sync", "/counter-async")
COMPONENTS = ("walrus", "aioredis")
# Shorter than the drivers' default (5 s), so the first wave leaves most of the stall to
# measure the 503s of the components marked down.
SOCKET_TIMEOUT = 2.0
HEALTH_TIMEOUT = 1.0
STALL = 10.0
CLIENTS = 8
# A 503 from a component marked down is a dictionary read away: "milliseconds", generously,
# for the 99th percentile; every one of them well under SOCKET_TIMEOUT.
AT_ONCE = 0.5
# Python start-up, a loaded CI machine.
SLACK = 15.0


@dataclass(frozen=True)
class Outcome:
    route: str
    started: float
    seconds: float
    status: int


class Load:
    """Clients that request both counters in turn until stopped, recording each answer."""

    def __init__(self, port: int) -> None:
        self.base = f"http://{LOCALHOST}:{port}"
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,)) for i in range(CLIENTS)]

    def _client(self, index: int) -> None:
        with httpx.Client(base_url=self.base, timeout=60) as client:
            turn = index
            while not self._stop.is_set():
                route = ROUTES[turn % len(ROUTES)]
                turn += 1
                started = time.monotonic()
                status = client.get(route, params={"key": f"c{index}"}).status_code
                self.outcomes.append(Outcome(route, started, time.monotonic() - started, status))

    def wait_for_fast_503s(self, since: float, bound: float) -> float:
        """Wait until every route has answered a request started after *since* with a 503 in
        under AT_ONCE; the time it had."""
        deadline = time.monotonic() + bound
        while True:
            fast = {
                o.route
                for o in list(self.outcomes)
                if o.started > since and o.status == 503 and o.seconds < AT_ONCE
            }
            if fast == set(ROUTES):
                return time.monotonic()
            assert time.monotonic() < deadline, f"no fast 503 within {bound:g}s on {fast}"
            time.sleep(0.02)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def component_states(port: int) -> dict[str, str]:
    response = httpx.get(f"http://{LOCALHOST}:{port}/health", timeout=30)
    entries = response.json()["components"]
    return {name: entries[name]["status"] for name in COMPONENTS}


def wait_for_states(port: int, wanted: str, bound: float) -> float:
    """Poll /health until both components are *wanted*; the time they were."""
    deadline = time.monotonic() + bound
    while True:
        states = component_states(port)
        if set(states.values()) == {wanted}:
            return time.monotonic()
        assert time.monotonic() < deadline, f"not {wanted} within {bound:g}s: {states}"
        time.sleep(0.05)


def figure(row: str, **values: float | int | str) -> None:
    text = ", ".join(
        f"{key}={value:.3f}s" if isinstance(value, float) else f"{key}={value}"
        for key, value in values.items()
    )
    print(f"\nFIGURE {row}: {text}")


def serve(redis_url: str, tmp_path: Path, breaker: bool) -> OpaRun:
    return serve_redis_example(
        redis_url, tmp_path, SOCKET_TIMEOUT, HEALTH_TIMEOUT, COMPONENT_BREAKER=breaker
    )


@pytest.mark.timeout(180)
def test_a_stalled_redis_fails_fast_after_the_first_wave_and_recovers(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    """Redis SIGSTOPped for 10 s under load: after the first wave both components are down,
    every request answers 503 at once and /health says down; after SIGCONT the same process
    serves again and /health says ok."""
    run = serve(private_redis.url, tmp_path, breaker=True)
    try:
        with Load(run.port) as load:
            time.sleep(1.0)  # a healthy stretch of load before the stall
            private_redis.pause()
            stalled = time.monotonic()
            # Only the requests' own outage errors trip the breaker here: /health, whose
            # failed ping would too, is asked once both routes answer fast.
            down = load.wait_for_fast_503s(stalled, SOCKET_TIMEOUT + HEALTH_TIMEOUT + SLACK)
            states = component_states(run.port)
            time.sleep(max(0.0, stalled + STALL - time.monotonic()))
            private_redis.resume()
            resumed = time.monotonic()
            ok = wait_for_states(run.port, "ok", 1.0 + HEALTH_TIMEOUT + SLACK)
            time.sleep(1.0)  # a healthy stretch after
        assert run.popen.poll() is None, "the server restarted or died"
    finally:
        run.close()
    assert states == {"walrus": "down", "aioredis": "down"}
    outcomes = load.outcomes
    assert {o.status for o in outcomes} <= {200, 503}, run.output()[-3000:]
    while_down = [o for o in outcomes if down <= o.started and o.started + o.seconds < resumed]
    assert len(while_down) > 100, len(while_down)
    assert {o.status for o in while_down} == {503}
    seconds = sorted(o.seconds for o in while_down)
    cuts = quantiles(seconds, n=100)
    assert cuts[98] < AT_ONCE, f"the 99th percentile of the 503s while down is {cuts[98]:.3f}s"
    assert seconds[-1] < SOCKET_TIMEOUT, f"a 503 while down took {seconds[-1]:.3f}s"
    after = [o for o in outcomes if o.started > ok]
    assert after and {o.status for o in after} == {200}
    # The first wave: the requests that met the stall itself, each its SOCKET_TIMEOUT.
    first_wave = [o for o in outcomes if o.status == 503 and o.seconds >= SOCKET_TIMEOUT * 0.9]
    figure(
        "redis-stall-breaker",
        slowest=seconds[-1],
        marked_down_after=down - stalled,
        first_wave=len(first_wave),
        slowest_first_wave=max((o.seconds for o in first_wave), default=0.0),
        fast_503s=len(while_down),
        p50=cuts[49],
        p99=cuts[98],
        serving_again_after=ok - resumed,
    )


@pytest.mark.timeout(180)
def test_with_the_breaker_off_a_stalled_redis_holds_every_request(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    """COMPONENT_BREAKER false: during the stall every request waits SOCKET_TIMEOUT before its
    503, /health says unavailable, and after SIGCONT the app serves again (today's way)."""
    run = serve(private_redis.url, tmp_path, breaker=False)
    stall = SOCKET_TIMEOUT + 3.0  # long enough for requests that start and end inside it
    try:
        with Load(run.port) as load:
            time.sleep(1.0)
            private_redis.pause()
            stalled = time.monotonic()
            time.sleep(SOCKET_TIMEOUT + 0.5)
            states = component_states(run.port)
            time.sleep(max(0.0, stalled + stall - time.monotonic()))
            private_redis.resume()
            resumed = time.monotonic()
            ok = wait_for_states(run.port, "ok", SLACK)
            time.sleep(1.0)
    finally:
        run.close()
    assert set(states.values()) == {"unavailable"}, states
    during = [o for o in load.outcomes if stalled <= o.started and o.started + o.seconds < resumed]
    assert during and {o.status for o in during} == {503}
    fastest = min(o.seconds for o in during)
    assert fastest >= SOCKET_TIMEOUT * 0.9, f"a 503 without the breaker took {fastest:.3f}s"
    assert {o.status for o in load.outcomes if o.started > ok} == {200}
    figure("redis-stall-no-breaker", requests_503=len(during), fastest_503=fastest)
