"""``opa run --workers 2`` against ``--workers 1``: GET /hello and GET /counter-async.

Both servers run the same settings (a /hello plugin, and examples/redis with its two Redis
components on keys of this run's own prefix), each started by ``opa run`` itself; the load
generator (wrk with one thread, or the Python one) runs in another process. Rounds take
turns: each round loads the one-process server, then the two-process one, on each path, and
the figure is the median of the per-round ratios.

On a two-core machine the load generator keeps one core busy, so a second worker has at most
the rest of the other core to add: a ratio near 1 there says the workers share the port
without cost, not that they cannot scale; on a machine with cores to spare it nears N.

    python benchmarks/bench_workers.py [--rounds 5] [--requests 20000] [--loadgen auto|wrk|python]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from pathlib import Path
from statistics import median

import bench_fixtures as fixtures
import bench_http as http
import redis
import yaml

from opa.testing import LoggedProcess, bound_port, clean_environ, delete_keys

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "redis"
PATHS = ("/hello", "/counter-async")
WORKERS = (1, 2)
CONCURRENCY = 32


def write_settings(root: Path, redis_url: str, prefix: str) -> Path:
    """A settings folder serving /hello and the Redis example's counters."""
    plugins = root / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "bench_hello.py").write_text(fixtures.HELLO_PLUGIN)
    folder = root / "settings"
    folder.mkdir()
    component = {"LOAD": "yes", "OPTS": {"URL": redis_url}}
    settings = {
        "PLUGIN_PATHS": [str(plugins), str(EXAMPLE)],
        "EXAMPLE_KEY_PREFIX": prefix,
        "LOG_LEVEL": "WARNING",
        "OPTIONAL_COMPONENTS": {
            "WALRUS": {**component, "DRIVER": "redis-walrus"},
            "AIOREDIS": {**component, "DRIVER": "redis-aioredis"},
        },
    }
    (folder / "settings.yaml").write_text(yaml.safe_dump({"default": settings}))
    return folder


def start(workers: int, settings: Path, scratch: Path) -> http.Server:
    """``opa run --workers N`` on a port the kernel picks, once /hello answers."""
    command = [sys.executable, "-m", "opa", "--settings-dir", str(settings), "run"]
    command += ["--host", "127.0.0.1", "--port", "0", "--no-reload", "--workers", str(workers)]
    log = scratch / f"workers-{workers}.log"
    process = LoggedProcess(command, log, env=clean_environ(settings), cwd=scratch)
    try:
        server = http.Server(
            f"{workers} worker(s)", process, bound_port(process.popen, "opa run", 120)
        )
        server.wait_ready()
    except BaseException:
        process.close()
        raise
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    args = http.checked_args(parser, argv, ("rounds", "requests"))
    redis_url = os.environ.get("OPA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"opa-bench-workers-{uuid.uuid4().hex[:8]}:"
    rates: dict[tuple[str, int], list[float]] = {(p, n): [] for p in PATHS for n in WORKERS}
    with tempfile.TemporaryDirectory(prefix="opa-bench-workers-") as folder:
        scratch = Path(folder)
        settings = write_settings(scratch, redis_url, prefix)
        servers = {}
        try:
            for workers in WORKERS:
                servers[workers] = start(workers, settings, scratch)
            for path in PATHS:  # warm up every process of each server
                for server in servers.values():
                    http.load(server.at(path), 2_000, CONCURRENCY, args.loadgen, scratch)
            for _ in range(args.rounds):
                for path in PATHS:
                    for workers, server in servers.items():
                        rate = http.load(
                            server.at(path), args.requests, CONCURRENCY, args.loadgen, scratch
                        )
                        rates[path, workers].append(rate)
        finally:
            for server in servers.values():
                server.stop()
            client = redis.Redis.from_url(redis_url)
            delete_keys(client, prefix)
            client.close()
    rows = []
    for number, path in enumerate(PATHS, start=1):
        one, two = rates[path, 1], rates[path, 2]
        ratio = median(b / a for a, b in zip(one, two, strict=True))
        rows.append(
            http.Row(
                str(number),
                f"GET {path} req/s, 2 workers (opa) vs 1 (baseline)",
                f"{median(two):,.0f}",
                f"{median(one):,.0f}",
                f"{ratio:.2f}x",
                "report",
                "-",
            )
        )
    notes = [
        f"{os.cpu_count()} CPU(s); the load generator ({args.loadgen}, one thread, "
        f"{CONCURRENCY} connections) takes one of them, so 2 workers share what is left.",
        f"{args.rounds} rounds of {args.requests} requests per path and server, taking turns; "
        "figures are medians, the ratio the median of per-round ratios.",
    ]
    http.print_report("### API worker processes (opa run --workers)", rows, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
