"""What opa's serving layer (opa.serving) costs a request, against plain uvicorn h11 serving.

1. GET /hello throughput of opa.main:app served by ``uvicorn --http h11`` and by
   ``uvicorn --http opa.serving:GuardedH11Protocol``, in paired rounds (each round runs both,
   in turns), from a load generator in another process; the figure is the median ratio of
   the pairs, target >= 0.97.
2. When valgrind is on PATH: instructions per request of each protocol class in-process
   (a raw ASGI app, a loopback-free in-memory transport), counted by callgrind at two request
   counts, so the start-up cost cancels out: (I(n2) - I(n1)) / (n2 - n1).

    python benchmarks/bench_serving.py [--rounds 9] [--requests 30000] [--callgrind-requests 2000]
        [--no-callgrind]

``--storm N`` measures instead what issue 13 measured before: N sockets (from two client
processes) that send a request line, then one header line every 10 s, against each protocol
for 30 s; it prints how /hello answered meanwhile (probed once a second), the server's log
lines, its open files and its resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any

import bench_callgrind as callgrind
import bench_fixtures as fixtures
import bench_http as http

from opa.testing import clean_environ

PROTOCOLS = {"uvicorn h11": "h11", "opa serving": "opa.serving:GuardedH11Protocol"}
REQUEST = b"GET /hello HTTP/1.1\r\nhost: bench\r\nuser-agent: bench\r\naccept: */*\r\n\r\n"


def start(name: str, protocol: str, settings: Path, log: Path) -> http.Server:
    """uvicorn serving opa.main:app with *protocol*, once /hello answers."""
    env = clean_environ(settings)
    args = ("--http", protocol)
    return http.start_server(name, "opa.main:app", settings.parent, env, log, uvicorn_args=args)


def throughput(
    args: argparse.Namespace, tool: str, scratch: Path
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Requests per second and server CPU µs per request of each protocol, round by round."""
    settings, _ = fixtures.hello_apps(scratch / "hello")
    servers = [
        start(name, protocol, settings, scratch / f"{protocol}.log")
        for name, protocol in PROTOCOLS.items()
    ]
    samples: dict[str, list[float]] = {server.name: [] for server in servers}
    cpu: dict[str, list[float]] = {server.name: [] for server in servers}
    try:
        for server in servers:
            http.load(server.url, args.warmup, args.concurrency, tool, scratch)
        for number in range(args.rounds):
            # Alternate who goes first, so neither always runs on the warmer machine.
            order = servers if number % 2 == 0 else servers[::-1]
            for server in order:
                before = server.cpu_seconds()
                rate = http.load(server.url, args.requests, args.concurrency, tool, scratch)
                used = server.cpu_seconds() - before
                samples[server.name].append(rate)
                cpu[server.name].append(used / args.requests * 1e6)
            shown = ", ".join(f"{name} {values[-1]:.0f}" for name, values in samples.items())
            print(f"  round {number + 1}/{args.rounds}: {shown}", file=sys.stderr, flush=True)
    finally:
        for server in servers:
            server.stop()
    return samples, cpu


# --- callgrind: the protocol in-process --------------------------------------------------


class MemoryTransport(asyncio.Transport):
    """Collects what the protocol writes; counts finished responses."""

    def __init__(self) -> None:
        super().__init__()
        self.responses = 0
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if bytes(data).endswith(b"hello"):
            self.responses += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def hello(scope: Any, receive: Any, send: Any) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


async def drive(protocol_name: str, requests: int) -> None:
    """*requests* keep-alive requests through one connection of the named protocol."""
    import uvicorn
    from uvicorn.server import ServerState

    config = uvicorn.Config(hello, http=protocol_name, lifespan="off", log_config=None)
    config.access_log = False
    config.load()
    protocol = config.http_protocol_class(  # type: ignore[call-arg]
        config=config, server_state=ServerState(), app_state={}
    )
    transport = MemoryTransport()
    protocol.connection_made(transport)
    for number in range(1, requests + 1):
        protocol.data_received(REQUEST)
        while transport.responses < number:
            await asyncio.sleep(0)
    transport.close()


def instructions(protocol: str, requests: int) -> int:
    command = [sys.executable, __file__, "--drive", protocol, str(requests)]
    return callgrind.instructions(command, clean_environ())


def per_request(low: int) -> dict[str, float]:
    counts = {}
    for name, protocol in PROTOCOLS.items():
        print(f"  callgrind: {name}", file=sys.stderr, flush=True)
        counts[name] = callgrind.per_unit(partial(instructions, protocol), low, 2 * low)
    return counts


# --- --storm: the slow-header attack of issue 13 ------------------------------------------


async def slow_clients(port: int, count: int, seconds: float) -> None:
    """*count* connections that send a request line, then a header line every 10 s, until
    the server closes them or *seconds* pass."""
    loop = asyncio.get_running_loop()

    async def one() -> None:
        started = loop.time()
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"GET /hello HTTP/1.1\r\n")
                while loop.time() - started < seconds:
                    try:
                        if not await asyncio.wait_for(reader.read(4096), 10.0):
                            break
                    except TimeoutError:
                        writer.write(b"x-slow: 1\r\n")
            finally:
                writer.close()

    await asyncio.gather(*(one() for _ in range(count)))


def probe(
    server: http.Server,
    children: list[subprocess.Popen[bytes]],
    answers: list[float | None],
    files: list[int],
) -> None:
    """GET /hello once a second while the slow clients run: each answer's seconds (or None),
    and the server's open files."""
    url = server.url
    while any(child.poll() is None for child in children):
        files.append(len(os.listdir(f"/proc/{server.process.pid}/fd")))
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=10):
                answers.append(time.monotonic() - started)
        except OSError:
            answers.append(None)
        time.sleep(1.0)


def storm(count: int, seconds: float, scratch: Path) -> None:
    settings, _ = fixtures.hello_apps(scratch / "hello")
    for name, protocol in PROTOCOLS.items():
        log = scratch / f"storm-{protocol}.log"
        server = start(name, protocol, settings, log)
        lines_before = len(log.read_bytes().splitlines())
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--slow-clients",
                    str(server.port),
                    str(half),
                    str(seconds),
                ],
            )
            for half in (count // 2, count - count // 2)
        ]
        answers: list[float | None] = []
        files: list[int] = []

        time.sleep(3.0)  # the sockets are opening
        prober = threading.Thread(target=probe, args=(server, children, answers, files))
        prober.start()
        for child in children:
            child.wait()
        prober.join()
        text = log.read_text(errors="replace").splitlines()[lines_before:]
        rss = server.rss_kib() / 1024
        server.stop()
        answered = sorted(a for a in answers if a is not None)
        print(f"### {name}: {count} slow-header sockets for {seconds:g} s")
        print(f"- /hello probes: {len(answered)} of {len(answers)} answered", end="")
        if answered:
            print(f", median {answered[len(answered) // 2]:.3f} s, max {answered[-1]:.3f} s")
        else:
            print()
        print(f"- server: {len(text)} log lines ({len(text) / seconds:,.0f} a second), ", end="")
        print(f"open files at most {max(files)}, {files[-1]} at the end; RSS {rss:.0f} MiB")
        for line in [line for line in text if "under pressure" in line][:8]:
            print(f"  - {line.split(' - ', 1)[-1]}")
        # The clients' own loop lags behind under this load (ss shows their sockets in
        # CLOSE-WAIT), so how they ended is the server's account above, not theirs.
        print(flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--loadgen", choices=["wrk", "python"], default=None)
    parser.add_argument("--callgrind-requests", type=int, default=2000, help="n1; n2 is twice")
    parser.add_argument("--no-callgrind", action="store_true")
    hidden = argparse.SUPPRESS  # the callgrind child's own mode
    parser.add_argument("--drive", nargs=2, metavar=("PROTOCOL", "REQUESTS"), help=hidden)
    parser.add_argument("--slow-clients", nargs=3, metavar=("PORT", "N", "SECONDS"), help=hidden)
    parser.add_argument("--storm", type=int, metavar="N", help="the slow-header attack instead")
    parser.add_argument("--storm-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    if args.drive:
        asyncio.run(drive(args.drive[0], int(args.drive[1])))
        return 0
    if args.slow_clients:
        port, count, seconds = args.slow_clients
        asyncio.run(slow_clients(int(port), int(count), float(seconds)))
        return 0
    if args.storm:
        with tempfile.TemporaryDirectory(prefix="opa-bench-storm-") as folder:
            storm(args.storm, args.storm_seconds, Path(folder))
        return 0
    tool = args.loadgen or ("wrk" if http.wrk_path() else "python")
    with tempfile.TemporaryDirectory(prefix="opa-bench-serving-") as folder:
        samples, cpu = throughput(args, tool, Path(folder))
        use_callgrind = not args.no_callgrind and shutil.which("valgrind")
        counts = per_request(args.callgrind_requests) if use_callgrind else {}
    plain, guarded = samples["uvicorn h11"], samples["opa serving"]
    ratio = median(g / p for g, p in zip(guarded, plain, strict=True))
    cpu_plain, cpu_guarded = cpu["uvicorn h11"], cpu["opa serving"]
    cpu_ratio = median(g / p for g, p in zip(cpu_guarded, cpu_plain, strict=True))
    rows = [
        http.Row(
            "1",
            f"GET /hello throughput, req/s ({args.requests} requests x {args.rounds} paired "
            f"rounds, c={args.concurrency}, {tool})",
            f"{median(guarded):,.0f}",
            f"{median(plain):,.0f}",
            f"{ratio:.3f}x",
            ">= 0.97x",
            "PASS" if ratio >= 0.97 else "MISS",
        ),
        http.Row(
            "1b",
            "server CPU time per request, µs (same rounds; less sensitive to other load)",
            f"{median(cpu_guarded):.0f}",
            f"{median(cpu_plain):.0f}",
            f"{cpu_ratio:.3f}x",
            "(info)",
            "info",
        ),
    ]
    if counts:
        low, high = args.callgrind_requests, 2 * args.callgrind_requests
        extra = counts["opa serving"] - counts["uvicorn h11"]
        rows.append(
            http.Row(
                "2",
                f"instructions per request, protocol in-process (callgrind, {high} - {low} "
                "requests)",
                f"{counts['opa serving']:,.0f}",
                f"{counts['uvicorn h11']:,.0f}",
                f"{extra:+,.0f} ({counts['opa serving'] / counts['uvicorn h11']:.3f}x)",
                "(info)",
                "info",
            )
        )
    print("opa: opa.serving's guarded protocol; baseline: uvicorn's own h11 protocol\n")
    print(http.table(rows))
    figures = {"throughput": samples, "cpu_us": cpu, "instructions": counts}
    print(json.dumps(figures), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
