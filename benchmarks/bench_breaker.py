"""The component breaker: how fast a stalled Redis is answered, and what it costs a healthy one.

Two measurements of ``GET /counter-async`` (examples/redis, the ``redis-aioredis`` driver):

1. **A stall.** A private redis-server (never the shared one) is SIGSTOPped for ``--stall``
   seconds while clients keep requesting, once with ``COMPONENT_BREAKER`` on and once off, on
   the drivers' default options (``SOCKET_TIMEOUT`` 5 s). Given: the 503s answered during
   the stall (their count, p50 and p99, client side), how long the breaker took to mark the
   component down, and how long after SIGCONT the server answered 200 again.
2. **A healthy backend.** Throughput with the breaker on against off, in paired rounds on
   fresh server processes (as ``bench_redis.py`` measures), so the breaker's cost on the
   ``get_instance`` path shows as a ratio with its 95% bootstrap interval; and, less
   sensitive to a busy machine, the CPU time of one ``get_instance`` call in a served app
   with the breaker on and off, in alternating rounds.

    python benchmarks/bench_breaker.py [--rounds 9] [--requests 5000] [--stall 10]

Nothing asserts: a MISS is a number to look at.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from statistics import median, quantiles
from typing import TYPE_CHECKING

import bench_http as http
import httpx
from bench_redis import (
    ASYNC,
    Variant,
    alternate,
    compare,
    delete_keys_at,
    package_version,
    say,
    verdict,
    write_opa_app,
)

from opa.testing import clean_environ

if TYPE_CHECKING:
    from opa.testing import RedisServer

TARGET_COST = 0.97
TARGET_P99 = 0.1
CLIENTS = 16


def launcher(name: str, folder: Path, settings: Path) -> Callable[[], http.Server]:
    env = clean_environ(settings)
    log = folder / f"{name}.log"
    return partial(http.start_server, name, "opa.main:app", folder, env, log, path=ASYNC)


@dataclass
class Stall:
    """One stall of the backend under one server: what the clients saw."""

    answers: list[tuple[float, float, int]] = field(default_factory=list)
    """(started, seconds, status) of every request."""
    paused: float = 0.0
    resumed: float = 0.0
    back: float = 0.0

    def during(self) -> list[float]:
        """Seconds of each 503 that started and ended inside the stall."""
        return [
            seconds
            for started, seconds, status in self.answers
            if status == 503 and started >= self.paused and started + seconds <= self.resumed
        ]

    def first_fast_503(self, fast: float) -> float | None:
        """Seconds from the pause to the first 503 answered in under *fast*: the breaker's
        trip, as the clients see it."""
        times = [
            started + seconds
            for started, seconds, status in self.answers
            if status == 503 and seconds < fast and self.paused <= started <= self.resumed
        ]
        return min(times) - self.paused if times else None


def stall_once(server: http.Server, redis: RedisServer, seconds: float) -> Stall:
    """Clients on *server* while *redis* (a paused, then resumed RedisServer) stalls."""
    stall = Stall()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=60) as session:
            while not stop.is_set():
                started = time.monotonic()
                status = session.get(server.at(ASYNC)).status_code
                stall.answers.append((started, time.monotonic() - started, status))

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        stall.paused = time.monotonic()
        redis.pause()
        time.sleep(seconds)
        stall.resumed = time.monotonic()
        redis.resume()
        deadline = stall.resumed + 60
        while time.monotonic() < deadline:
            if httpx.get(server.at(ASYNC), timeout=30).status_code == 200:
                stall.back = time.monotonic() - stall.resumed
                break
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    return stall


INSTANCE_PLUGIN = """
from opa import Driver


class Memory(Driver):
    name = "bench-memory"
    is_async = True

    async def connect(self):
        self.instance = {}
"""


def get_instance_ns(folder: Path, rounds: int, number: int) -> dict[str, list[float]]:
    """CPU ns of one ``get_instance`` call in a started app, breaker on and off, per round."""
    from fastapi.testclient import TestClient

    from opa import get_instance
    from opa.testing import build_app

    folder.mkdir()
    (folder / "bench_breaker_memory.py").write_text(INSTANCE_PLUGIN)
    components = {"STORE": {"LOAD": "yes", "DRIVER": "bench-memory"}}
    settings = {"PLUGIN_PATHS": [str(folder)], "OPTIONAL_COMPONENTS": components}
    results: dict[str, list[float]] = {"on": [], "off": []}
    for number_of_round in range(rounds):
        order = ("on", "off") if number_of_round % 2 == 0 else ("off", "on")
        for name in order:
            app = build_app({**settings, "COMPONENT_BREAKER": name == "on", "LOG_LEVEL": "ERROR"})
            with TestClient(app):
                started = time.process_time()
                for _ in range(number):
                    get_instance("store")
                results[name].append((time.process_time() - started) / number * 1e9)
    return results


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 of *seconds* (both the one value when there is one)."""
    if len(seconds) < 2:
        value = seconds[0] if seconds else float("nan")
        return value, value
    cuts = quantiles(seconds, n=100)
    return cuts[49], cuts[98]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="healthy Redis URL (default: 127.0.0.1:6379/9, else private)")
    parser.add_argument("--rounds", type=int, default=9, help="paired throughput rounds")
    parser.add_argument("--requests", type=int, default=5_000, help="requests per round")
    parser.add_argument("--warmup", type=int, default=1_000, help="warm-up requests per server")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--stall", type=float, default=10.0, help="seconds Redis is stopped")
    parser.add_argument("--stall-rounds", type=int, default=2, help="stalls per setting")
    parser.add_argument("--calls", type=int, default=500_000, help="get_instance calls a round")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    counts = ("rounds", "requests", "concurrency", "stall_rounds", "calls")
    return http.checked_args(parser, argv, counts)


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print the markdown table."""
    args = parse_args(argv)
    from opa import mask_secrets
    from opa.testing import TestServices

    started = time.perf_counter()
    prefix = f"opa-bench:{uuid.uuid4().hex[:8]}:"
    rows: list[http.Row] = []
    notes: list[str] = []
    with ExitStack() as stack:
        services = stack.enter_context(TestServices())
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opa-bench-")))

        private = services.start_redis()
        say(f"breaker 1/3: {args.stall:g} s stalls of a private Redis on port {private.port}")
        stalls: dict[str, list[Stall]] = {"on": [], "off": []}
        for number in range(args.stall_rounds):
            for name in ("on", "off") if number % 2 == 0 else ("off", "on"):
                folder = scratch / f"stall-{name}-{number}"
                folder.mkdir()
                settings = write_opa_app(
                    folder, private.url, prefix, COMPONENT_BREAKER=name == "on"
                )
                server = launcher(f"stall-{name}", folder, settings)()
                try:
                    stalls[name].append(stall_once(server, private, args.stall))
                finally:
                    server.stop()
                shown = percentiles(stalls[name][-1].during())
                say(
                    f"  stall {number + 1}, breaker {name}: p50 {shown[0]:.3f}s p99 {shown[1]:.3f}s"
                )

        url = args.url or services.redis_url()
        stack.callback(lambda: say(f"breaker: deleted {delete_keys_at(url, prefix)} keys"))
        variants = []
        for name in ("on", "off"):
            folder = scratch / f"healthy-{name}"
            folder.mkdir()
            settings = write_opa_app(
                folder, url, f"{prefix}{name}:", COMPONENT_BREAKER=name == "on"
            )
            variants.append(Variant(name, launcher(name, folder, settings), ASYNC))

        def send(target: str, requests: int) -> float:
            return http.load(target, requests, args.concurrency, args.loadgen, scratch)

        say(f"breaker 2/3: GET {ASYNC} on a healthy Redis, breaker on and off")
        alternate(variants, args.rounds, lambda v: v.measure(send, args.warmup, args.requests))
        say("breaker 3/3: get_instance CPU time, breaker on and off")
        calls = get_instance_ns(scratch / "instance", args.rounds, args.calls)

    for name in ("on", "off"):
        during = [seconds for stall in stalls[name] for seconds in stall.during()]
        p50, p99 = percentiles(during)
        trips = [stall.first_fast_503(TARGET_P99) for stall in stalls[name]]
        backs = [stall.back for stall in stalls[name]]
        trip = median(t for t in trips if t is not None) if any(trips) else None
        rows.append(
            http.Row(
                "1" if name == "on" else "2",
                f"503s of `GET {ASYNC}` during a {args.stall:g} s stall, breaker {name}: "
                "p50 / p99, s",
                f"{p50:.3f} / {p99:.3f}",
                "",
                f"{len(during)} 503s",
                f"p99 <= {TARGET_P99} s" if name == "on" else "(today's behaviour)",
                verdict(p99 <= TARGET_P99) if name == "on" else "",
            )
        )
        notes.append(
            f"{'1' if name == 'on' else '2'}: breaker {name}; "
            + (f"first fast 503 {trip:.2f} s after the pause; " if trip is not None else "")
            + f"200 again {median(backs):.2f} s after SIGCONT (median of {len(backs)} stalls)"
        )
    on, off = variants
    compared = compare(on.rates, off.rates)
    rows.append(
        http.Row(
            "3",
            f"`GET {ASYNC}` on a healthy Redis, breaker on vs off, req/s",
            f"{median(on.rates):,.0f}",
            f"{median(off.rates):,.0f}",
            str(compared),
            f">= {TARGET_COST}x",
            verdict(compared.ratio >= TARGET_COST),
        )
    )
    per_call = compare(calls["on"], calls["off"])
    rows.append(
        http.Row(
            "4",
            "`opa.get_instance(name)` in a served app, breaker on vs off, ns/call (CPU time)",
            f"{median(calls['on']):.0f}",
            f"{median(calls['off']):.0f}",
            str(per_call),
            "<= 1.03x",
            verdict(per_call.ratio <= 1.03),
        )
    )
    cpu = compare(on.cpu_us, off.cpu_us)
    notes.append(
        f"3: server CPU per request, us: on {median(on.cpu_us):.0f}, off {median(off.cpu_us):.0f} "
        f"(on/off {cpu}); ratio of the medians {median(on.rates) / median(off.rates):.3f}"
    )
    elapsed = time.perf_counter() - started
    http.print_report(
        f"examples/redis under opa; stalls on a private Redis with the drivers' default options "
        f"(SOCKET_TIMEOUT 5 s, HEALTH_TIMEOUT 2 s), {CLIENTS} clients; healthy rounds on "
        f"{mask_secrets(url)}, {args.requests:,} requests x {args.rounds} rounds, "
        f"c={args.concurrency}, load from {args.loadgen}; redis-py {package_version('redis')}, "
        f"Python {platform.python_version()}; {elapsed:.0f} s.\n",
        rows,
        notes,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
