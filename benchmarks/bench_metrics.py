"""What Prometheus metrics (setting ``METRICS``) cost a request; ``bench_tracing.py`` measures
``TRACING`` with the same code (:func:`compare_switch`).

``GET /hello`` (examples/hello-world) and ``GET /counter-async`` (examples/redis, the
``redis-aioredis`` driver on the shared Redis, keys under a prefix of this run's own), each
served with metrics on and off, in paired rounds on fresh server processes as
``bench_redis.py`` measures: the ratio of on to off is the median of the per-round ratios,
with its 95% bootstrap interval, and the server's CPU time per request beside it. Less
sensitive to a busy machine: the CPU time of one ``GET /hello`` through the app itself
(an ASGI call, no server, no sockets), metrics on and off in alternating rounds. Not
moved by a busy machine at all, when valgrind is there: the instructions a whole server
process spends on a keep-alive ``GET /hello``, counted by callgrind at two request counts.

    python benchmarks/bench_metrics.py [--rounds 9] [--requests 5000] [--callgrind-requests 500]

Nothing asserts: a MISS is a number to look at.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from functools import partial
from http.client import HTTPConnection
from pathlib import Path
from statistics import median
from typing import Any

import bench_callgrind as callgrind
import bench_http as http
from bench_redis import Variant, alternate, compare, delete_keys_at, say, verdict, write_opa_app

from opa.testing import clean_environ, free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "examples" / "hello-world"
TARGET = 0.95
CALLGRIND_START = 300.0  # seconds for a server to answer under callgrind


def write_hello_app(folder: Path, **switch: bool) -> Path:
    """Settings serving examples/hello-world, with *switch* (``METRICS=True``, say); the
    settings folder."""
    settings = {
        "default": {
            "LOG_LEVEL": "WARNING",
            "PLUGIN_PATHS": [str(HELLO)],
            "PLUGIN_ENTRY_POINTS": False,
            **switch,
        }
    }
    (folder / "settings").mkdir(parents=True)
    (folder / "settings" / "settings.json").write_text(json.dumps(settings))
    return folder / "settings"


async def _asgi_hello_us(app: Any, number: int) -> float:
    """CPU microseconds of one ``GET /hello`` through *app*, over *number* calls."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/hello",
        "raw_path": b"/hello",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    started = time.process_time()
    for _ in range(number):
        await app(dict(scope), receive, send)
    return (time.process_time() - started) / number * 1e6


def _alone_us(switch: str, state: str, number: int, env: dict[str, str]) -> float:
    """:func:`_asgi_hello_us` in a process of its own, whose environment adds *env*."""
    command = [sys.executable, str(http.CHILD), "asgi-hello", switch, state, str(number)]
    done = subprocess.run(command, capture_output=True, text=True, env=clean_environ() | env)
    if done.returncode != 0:
        raise RuntimeError(f"asgi-hello {switch} {state} failed:\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout.splitlines()[-1])["us"])


def asgi_hello_us(
    rounds: int, number: int, switch: str = "METRICS", env: dict[str, str] | None = None
) -> dict[str, list[float]]:
    """CPU microseconds of one ``GET /hello`` through the app, *switch* on and off, per round.

    With *env*, each round of each variant runs in a fresh process with *env* added: once a
    process has a tracer provider, FastAPI's own telemetry traces every app in it, so an app
    with ``TRACING`` off would not be measured untraced beside one with it on.
    """
    if env is not None:
        alone: dict[str, list[float]] = {"on": [], "off": []}
        for number_of_round in range(rounds):
            for name in ("on", "off") if number_of_round % 2 == 0 else ("off", "on"):
                alone[name].append(_alone_us(switch, name, number, env))
        return alone
    from opa.testing import build_app

    apps = {
        name: build_app({"PLUGIN_PATHS": [str(HELLO)], switch: name == "on", "LOG_LEVEL": "ERROR"})
        for name in ("on", "off")
    }
    results: dict[str, list[float]] = {"on": [], "off": []}
    for number_of_round in range(rounds):
        for name in ("on", "off") if number_of_round % 2 == 0 else ("off", "on"):
            results[name].append(asyncio.run(_asgi_hello_us(apps[name], number)))
    return results


def variant(
    name: str, folder: Path, settings: Path, path: str, env: dict[str, str] | None = None
) -> Variant:
    launch = partial(
        http.start_server,
        name,
        "opa.main:app",
        folder,
        clean_environ(settings) | (env or {}),
        folder / f"{name}.log",
        path=path,
    )
    return Variant(name, launch, path)


def keep_alive_hellos(port: int, requests: int, process: subprocess.Popen[str]) -> None:
    """Send *requests* ``GET /hello`` on one connection once the server answers (slowly,
    under callgrind), then stop it as Ctrl-C would."""

    def first_answer() -> HTTPConnection | None:
        if process.poll() is not None:
            raise RuntimeError(f"the server under callgrind ended ({process.returncode})")
        try:
            connection = HTTPConnection("127.0.0.1", port, timeout=120)
            connection.request("GET", "/hello")
            connection.getresponse().read()
        except OSError:
            return None
        return connection

    connection = wait_for(first_answer, CALLGRIND_START, "the server under callgrind", 0.2)
    for _ in range(requests - 1):
        connection.request("GET", "/hello")
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"GET /hello under callgrind answered {answer.status}")
    connection.close()
    process.send_signal(signal.SIGINT)


def server_instructions(switch: str, state: str, env: dict[str, str] | None, requests: int) -> int:
    """Instructions of a whole server process serving examples/hello-world with *switch*
    on or off (its environment plus *env*), through *requests* keep-alive ``GET /hello``."""
    with tempfile.TemporaryDirectory(prefix="opa-bench-callgrind-") as folder:
        settings = write_hello_app(Path(folder), **{switch: state == "on"})
        port = free_port()
        command = http.uvicorn_command("opa.main:app", Path(folder), port)
        drive = partial(keep_alive_hellos, port, requests)
        return callgrind.instructions(command, clean_environ(settings) | (env or {}), drive)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", help="Redis URL (default: the shared 127.0.0.1:6379, else private)"
    )
    parser.add_argument("--rounds", type=int, default=9, help="paired rounds per endpoint")
    parser.add_argument("--requests", type=int, default=5_000, help="requests per round")
    parser.add_argument("--warmup", type=int, default=1_000, help="warm-up requests per server")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--calls", type=int, default=20_000, help="ASGI calls per CPU round")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--callgrind-requests", type=int, default=500, help="n1 (n2 is three times); 0: none"
    )
    args = http.checked_args(parser, argv, ("rounds", "requests", "concurrency", "calls"))
    if args.callgrind_requests < 0:
        parser.error("--callgrind-requests must be 0 (no count) or more")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure both endpoints with metrics on and off and print the markdown table."""
    return compare_switch("METRICS", "metrics", argv)


def judged(ratio: float, target: float | None, shown: str = "") -> tuple[str, str]:
    """The target and verdict columns of a row: *ratio* (higher is better) against
    *target*, or "reported" when the figure has none."""
    if target is None:
        return "reported", ""
    return shown or f">= {target}x", verdict(ratio >= target)


def judged_cost(ratio: float, target: float | None) -> tuple[str, str]:
    """:func:`judged` for a cost ratio (lower is better), held to the reciprocal of *target*."""
    return judged(1 / ratio, target, f"<= {1 / target:.3f}x" if target else "")


def compare_switch(
    switch: str,
    label: str,
    argv: list[str] | None,
    env: dict[str, str] | None = None,
    target: float | None = TARGET,
) -> int:
    """Measure both endpoints with the setting *switch* on and off (servers started with
    *env* added to their environment) and print the markdown table; *label* names it.
    With *target* None the ratios are reported without a verdict."""
    args = parse_args(argv)
    from opa.testing import TestServices

    started = time.perf_counter()
    prefix = f"opa-bench-{label}:{uuid.uuid4().hex[:8]}:"
    pairs: list[tuple[str, Variant, Variant]] = []
    with ExitStack() as stack:
        services = stack.enter_context(TestServices())
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opa-bench-")))
        url = args.url or services.redis_url()
        stack.callback(lambda: say(f"{label}: deleted {delete_keys_at(url, prefix)} keys"))

        def send(target: str, requests: int) -> float:
            return http.load(target, requests, args.concurrency, args.loadgen, scratch)

        for path in ("/hello", "/counter-async"):
            built = []
            for name in ("on", "off"):
                folder = scratch / f"{path.strip('/')}-{name}"
                folder.mkdir()
                on = {switch: name == "on"}
                if path == "/hello":
                    settings = write_hello_app(folder, **on)
                else:
                    settings = write_opa_app(folder, url, f"{prefix}{name}:", **on)
                built.append(variant(name, folder, settings, path, env))
            say(f"{label}: GET {path}, {label} on and off")
            alternate(built, args.rounds, lambda v: v.measure(send, args.warmup, args.requests))
            pairs.append((path, built[0], built[1]))
        say(f"{label}: CPU time of GET /hello through the app, {label} on and off")
        calls = asgi_hello_us(args.rounds, args.calls, switch, env)
        counted: dict[str, float] = {}
        if args.callgrind_requests and shutil.which("valgrind"):
            low = args.callgrind_requests
            for state in ("on", "off"):
                say(f"{label}: instructions of a whole server, {label} {state} (callgrind)")
                count = partial(server_instructions, switch, state, env)
                counted[state] = callgrind.per_unit(count, low, 3 * low)

    rows: list[http.Row] = []
    notes: list[str] = []
    for number, (path, on, off) in enumerate(pairs, start=1):
        compared = compare(on.rates, off.rates)
        rows.append(
            http.Row(
                str(number),
                f"`GET {path}`, {label} on vs off, req/s",
                f"{median(on.rates):,.0f}",
                f"{median(off.rates):,.0f}",
                str(compared),
                *judged(compared.ratio, target),
            )
        )
        cpu = compare(on.cpu_us, off.cpu_us)
        notes.append(
            f"{number}: server CPU per request, us: on {median(on.cpu_us):.0f}, "
            f"off {median(off.cpu_us):.0f} (on/off {cpu})"
        )
    per_call = compare(calls["on"], calls["off"])
    rows.append(
        http.Row(
            str(len(pairs) + 1),
            f"`GET /hello` through the app (ASGI call), {label} on vs off, CPU us/request",
            f"{median(calls['on']):.1f}",
            f"{median(calls['off']):.1f}",
            str(per_call),
            *judged_cost(per_call.ratio, target),
        )
    )
    if counted:
        ratio = counted["on"] / counted["off"]
        rows.append(
            http.Row(
                str(len(rows) + 1),
                f"`GET /hello`, whole server process, {label} on vs off, instructions/request "
                f"(callgrind, {3 * args.callgrind_requests} - {args.callgrind_requests})",
                f"{counted['on']:,.0f}",
                f"{counted['off']:,.0f}",
                f"{ratio:.3f}x",
                *judged_cost(ratio, target),
            )
        )
    elapsed = time.perf_counter() - started
    http.print_report(
        f"Python {platform.python_version()}, {args.rounds} paired rounds of "
        f"{args.requests:,} requests at concurrency {args.concurrency}, load from "
        f"{args.loadgen}, {elapsed:.0f} s in all.\n",
        rows,
        notes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
